//! Timestamps as skein writes them everywhere (catalog, manifests, run records, CLI
//! output): RFC 3339 in UTC with milliseconds and `Z`, e.g. `2026-11-30T05:33:02.123Z`.
//! One precision and one zone spelling, so they sort as text and read alike.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time as skein writes it.
pub fn now() -> String {
    format(Utc::now())
}

/// `t` as skein writes it.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
