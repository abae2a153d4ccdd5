//! serde's error messages in plain words, for the problem documents the
//! JSON body, query and path extractors answer with.
//!
//! Invariant: nothing of the submitted value survives. serde writes
//! `invalid type: string "hunter2", expected u32`; only what was expected
//! is kept, and said the way an API user would ("must be a whole number"),
//! never as a Rust type.

/// What was wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Described {
    /// A required field is missing: its name (serde reports it at the
    /// parent's path).
    Missing(String),
    /// A field the type does not have: its name.
    Unknown(String),
    /// The field is there but its value is not acceptable.
    Invalid(String),
}

/// Describes one serde error message (of serde_json, serde_urlencoded or
/// axum's path deserializer).
pub fn describe(message: &str) -> Described {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(missing) = message.strip_prefix("missing field ") {
        return Described::Missing(missing.trim_matches('`').to_owned());
    }
    if let Some(unknown) = message.strip_prefix("unknown field ") {
        let name = unknown.split(',').next().unwrap_or_default().trim_matches('`');
        return Described::Unknown(name.to_owned());
    }
    if let Some((_, expected)) = message.rsplit_once(", expected ") {
        return Described::Invalid(expected_in_words(expected));
    }
    Described::Invalid(failure_in_words(message))
}

/// A type name as serde or axum spells what it expected (`u64`, `a
/// boolean`, `struct Signup with 3 elements`, `one of ...`, `Uuid`) in plain words.
pub fn expected_in_words(expected: &str) -> String {
    let expected = expected.trim();
    if let Some(variants) = expected.strip_prefix("one of ") {
        return format!("must be one of {}", variants.replace('`', ""));
    }
    let short = expected.rsplit("::").next().unwrap_or(expected);
    match short {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "must be a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "must be a whole number".into(),
        "f32" | "f64" => "must be a number".into(),
        "a boolean" | "bool" => "must be true or false".into(),
        "String" | "str" | "a borrowed string" | "char" | "a character" => "must be a string".into(),
        "Uuid" | "a UUID string" | "UUID parsing failed" => "must be a UUID".into(),
        "an RFC 3339 formatted date and time string" | "DateTime" => {
            "must be a date and time in RFC 3339 form, e.g. 2026-01-31T12:00:00Z".into()
        }
        other if other.starts_with("struct ") || other.starts_with("a map") => "must be a JSON object".into(),
        other if other.starts_with("a sequence") || other.starts_with("a tuple") => "must be an array".into(),
        other if other.starts_with("a string") => "must be a string".into(),
        _ => "has an invalid value".into(),
    }
}

/// A parse failure without "expected ..." (serde_urlencoded reports the
/// parser's own error) in plain words.
fn failure_in_words(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("invalid digit") || lower.contains("cannot parse integer") {
        "must be a whole number".into()
    } else if lower.contains("too large") || lower.contains("too small") {
        "is out of range".into()
    } else if lower.contains("float") {
        "must be a number".into()
    } else if lower.contains("`true` or `false`") {
        "must be true or false".into()
    } else if lower.contains("uuid") {
        "must be a UUID".into()
    } else if lower.contains("premature end of input") || lower.contains("input contains invalid characters") {
        "must be a date and time in RFC 3339 form, e.g. 2026-01-31T12:00:00Z".into()
    } else {
        "has an invalid value".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_plain_words_without_the_submitted_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            n: u32,
            flag: Option<bool>,
        }
        let error = serde_json::from_str::<Body>(r#"{"n": "hunter2"}"#).unwrap_err().to_string();
        let described = describe(&error);
        assert_eq!(described, Described::Invalid("must be a whole number, 0 or more".into()));
        assert!(!format!("{described:?}").contains("hunter2"));
        assert_eq!(
            describe(&serde_json::from_str::<Body>("{}").unwrap_err().to_string()),
            Described::Missing("n".into())
        );
        let unknown = serde_json::from_str::<Body>(r#"{"n": 1, "delay": 5}"#).unwrap_err().to_string();
        assert_eq!(describe(&unknown), Described::Unknown("delay".into()));
        let flag = serde_json::from_str::<Body>(r#"{"n": 1, "flag": "yes"}"#).unwrap_err().to_string();
        assert_eq!(describe(&flag), Described::Invalid("must be true or false".into()));
    }

    #[test]
    fn query_string_failures_are_named_in_plain_words() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Query {
            limit: u64,
        }
        let error = serde_urlencoded::from_str::<Query>("limit=abc").unwrap_err().to_string();
        assert_eq!(describe(&error), Described::Invalid("must be a whole number".into()));
        let error = serde_urlencoded::from_str::<Query>("").unwrap_err().to_string();
        assert_eq!(describe(&error), Described::Missing("limit".into()));
        assert_eq!(expected_in_words("one of `a`, `b`"), "must be one of a, b");
        assert_eq!(expected_in_words("struct SignupRequest with 3 elements"), "must be a JSON object");
    }
}
