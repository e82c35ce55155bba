//! [`Options`]: how the engine runs (time scale, the local stand-in for S3, token polling,
//! AWS's quotas).

use std::path::PathBuf;
use std::time::Duration;

/// Engine options.
#[derive(Clone)]
pub struct Options {
    /// Multiplies every Wait, retry delay and timeout (tests run with e.g. 0.01).
    pub time_scale: f64,
    /// Directory standing in for S3: `s3://bucket/key` is `<s3_root>/bucket/key`.
    pub s3_root: PathBuf,
    /// How often a waiting task polls for its token's answer.
    pub token_poll: Duration,
    /// Enforce AWS's quotas ([`crate::quotas`]): payload sizes, history length.
    pub quotas: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            time_scale: std::env::var("SKEIN_STATES_TIME_SCALE")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(1.0),
            s3_root: PathBuf::from("."),
            token_poll: Duration::from_millis(50),
            quotas: std::env::var_os("SKEIN_STATES_NO_QUOTAS").is_none(),
        }
    }
}
