//! [`Interrupt`]: why running a state, a frame or an execution stopped short of a result.
//!
//! Only [`Interrupt::Failed`] is the state machine's business (retried, caught, an
//! execution's `FAILED`); the other variants stop the execution where it stands, without
//! passing through ASL error handling and without a string to recognise them by.

use crate::error::StoreError;
use crate::failure::Failure;

/// Why a state, frame or execution stopped short of a result.
#[derive(Debug, Clone)]
pub(crate) enum Interrupt {
    /// An ASL error: retried and caught by the state machine's `Retry` and `Catch`.
    Failed(Failure),
    /// The store could not commit or read: the execution stops and can be resumed.
    Store(StoreError),
    /// `skein states stop` marked the execution `ABORTED`.
    Aborted,
    /// The execution ran longer than its `TimeoutSeconds`.
    TimedOut {
        /// The machine's `TimeoutSeconds`.
        seconds: u64,
    },
}

impl Interrupt {
    /// The failure a retrier or catcher may take: an ASL error other than `States.Runtime`
    /// (which neither retries nor catches); `None` for everything else.
    pub(crate) fn handled(&self) -> Option<&Failure> {
        match self {
            Interrupt::Failed(f) if f.error != "States.Runtime" => Some(f),
            _ => None,
        }
    }
}

impl From<Failure> for Interrupt {
    fn from(f: Failure) -> Interrupt {
        Interrupt::Failed(f)
    }
}

impl From<StoreError> for Interrupt {
    fn from(e: StoreError) -> Interrupt {
        Interrupt::Store(e)
    }
}
