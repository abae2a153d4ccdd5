//! Real-time gateway settings (`RT_*`, `PRESENCE_TTL_SECS`): how much
//! history a channel keeps, how far a connection's reader may fall behind,
//! how many malformed frames a connection may send.
//!
//! Invariants: every bound is non-zero and capped, so no setting makes a
//! channel's history, a connection's queue or the bad-frame allowance
//! unbounded.

use std::time::Duration;

use super::ConfigError;

/// The real-time gateway's settings, validated.
#[derive(Clone, Debug)]
pub struct RealtimeSettings {
    /// `RT_HISTORY_MAX`: entries a channel's history keeps (approximately,
    /// `MAXLEN ~`).
    pub history_max: u64,
    /// `RT_HISTORY_SECS`: how long a channel's history keeps an entry
    /// (trimmed by `MINID` on each publish; an idle channel's history
    /// expires as a whole).
    pub history_age: Duration,
    /// `RT_MAX_BAD_FRAMES`: malformed frames a connection may send; one more
    /// closes it.
    pub max_bad_frames: u32,
    /// `RT_OUTBOUND_BUFFER`: frames queued for a connection's reader; a
    /// reader this far behind is disconnected.
    pub outbound_buffer: usize,
    /// `PRESENCE_TTL_SECS`: a user whose connections stopped heartbeating
    /// (a crashed instance) is offline after this long.
    pub presence_ttl: Duration,
}

/// These settings as written.
pub(super) struct RawRealtime {
    pub(super) rt_history_max: u64,
    pub(super) rt_history_secs: u64,
    pub(super) rt_max_bad_frames: u32,
    pub(super) rt_outbound_buffer: usize,
    pub(super) presence_ttl_secs: u64,
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(setting: &str, value: T, min: T, max: T) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(setting, format!("must be between {min} and {max}")));
    }
    Ok(value)
}

pub(super) fn validate(raw: RawRealtime) -> Result<RealtimeSettings, ConfigError> {
    Ok(RealtimeSettings {
        history_max: within("rt_history_max", raw.rt_history_max, 1, 1_000_000)?,
        history_age: Duration::from_secs(within("rt_history_secs", raw.rt_history_secs, 1, 30 * 86_400)?),
        max_bad_frames: within("rt_max_bad_frames", raw.rt_max_bad_frames, 0, 10_000)?,
        outbound_buffer: within("rt_outbound_buffer", raw.rt_outbound_buffer, 1, 65_536)?,
        presence_ttl: Duration::from_secs(within("presence_ttl_secs", raw.presence_ttl_secs, 2, 3_600)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawRealtime {
        RawRealtime {
            rt_history_max: 1000,
            rt_history_secs: 86_400,
            rt_max_bad_frames: 10,
            rt_outbound_buffer: 256,
            presence_ttl_secs: 30,
        }
    }

    #[test]
    fn defaults_are_valid_and_bounds_name_the_setting() {
        assert!(validate(raw()).is_ok());
        let error = validate(RawRealtime { rt_outbound_buffer: 0, ..raw() }).unwrap_err();
        assert_eq!(error.setting, "RT_OUTBOUND_BUFFER");
        let error = validate(RawRealtime { rt_history_max: 0, ..raw() }).unwrap_err();
        assert_eq!(error.setting, "RT_HISTORY_MAX");
    }
}
