//! The statuses of an execution and of a task token, as enums with the exact spellings the
//! store keeps and the CLI prints (`RUNNING`, `TIMED_OUT`; `waiting`, `succeeded`).
//!
//! Both compare equal to their spelling (`status == "RUNNING"`), so code that still reads
//! them as text keeps working while it moves to the enums.

use std::fmt;
use std::str::FromStr;

/// A spelling that is no status (a store written by something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} status `{text}`")]
pub struct UnknownStatus {
    /// `execution` or `task token`.
    pub what: &'static str,
    /// The text found.
    pub text: String,
}

/// Declares a status enum with its spellings: serde, `Display`, `FromStr`, `as_str` and
/// comparison with text all use the same table.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The spelling kept in the store and printed by the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<$name, UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownStatus { what: $what, text: s.to_string() }),
                }
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

status!(
    /// How far an execution is: running, or how it ended (Step Functions' spellings).
    ExecutionStatus, "execution", {
        /// Started and not ended; `resume` continues it.
        Running = "RUNNING",
        /// Ended at a `Succeed` state or an `End`.
        Succeeded = "SUCCEEDED",
        /// Ended with an error no catcher took.
        Failed = "FAILED",
        /// Ran longer than the machine's `TimeoutSeconds`.
        TimedOut = "TIMED_OUT",
        /// Stopped from outside (`skein states stop`).
        Aborted = "ABORTED",
    }
);

status!(
    /// Where a task token stands: waiting for its answer, or answered.
    TokenStatus, "task token", {
        /// Issued; no success or failure sent yet (heartbeats keep it waiting).
        Waiting = "waiting",
        /// Answered with `send-task-success`.
        Succeeded = "succeeded",
        /// Answered with `send-task-failure`.
        Failed = "failed",
    }
);
