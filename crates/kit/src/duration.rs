//! Durations as the whole milliseconds Redis commands and the kit's scripts
//! take.

use std::time::Duration;

/// `d` in whole milliseconds, rounded down and saturating at `u64::MAX`.
///
/// Rounding down can give 0: callers whose Redis argument must be positive
/// (PX, PEXPIRE, a BLOCK where 0 would mean forever) take `.max(1)`.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
