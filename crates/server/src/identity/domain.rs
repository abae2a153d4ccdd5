//! Validated identity values. A value of these types has passed its rules,
//! so services never re-check them; parsing reports the field by name and
//! never echoes the input.

use crate::validation::FieldError;

/// An email address, trimmed; compared case-insensitively (stored as given,
/// unique on `lower(email)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let invalid = || FieldError::new("email", "must be an email address like name@example.com");
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for lookups and per-address limits.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// 3–32 characters of `[a-zA-Z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let ok = (3..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new("username", "must be 3-32 characters of letters, digits, '_', '.' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1-100 characters once trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if (1..=100).contains(&trimmed.chars().count()) && !trimmed.chars().any(char::is_control) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(FieldError::new("display_name", "must be 1-100 characters, no control characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8–128 characters (counted as Unicode scalar values).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let length = raw.chars().count();
        if (8..=128).contains(&length) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(field, "must be 8-128 characters long"))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada Lovelace ").unwrap().as_str(), "Ada Lovelace");
        for bad in ["", "   ", "a\u{0}b", &"x".repeat(101)] {
            assert_eq!(DisplayName::parse(bad).unwrap_err().field, "display_name");
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "First.Last+tag@sub.example.com", "  x@y.io "] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "plain", "@b.co", "a@", "a@b", "a b@c.de", "a@b..c", "a@.b.c", "a@b.c."] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad}");
        }
        assert_eq!(Email::parse("A@B.Co").unwrap().normalized(), "a@b.co");
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(Username::parse("ab_c.d-9").is_ok());
        for bad in ["ab", "has space", "ü-user", &"x".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert!(Password::parse("password", "12345678").is_ok());
        assert!(Password::parse("password", "1234567").is_err());
        assert!(Password::parse("password", &"é".repeat(128)).is_ok());
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(!format!("{:?}", Password::parse("p", "secret-pass").unwrap()).contains("secret"));
    }
}
