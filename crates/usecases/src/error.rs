//! Errors of the use cases: infrastructure failures, not dataset outcomes.

/// Result with the use-case [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The catalog or the machine failed; the dataset's state is unknown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog failed or refused.
    #[error(transparent)]
    Catalog(#[from] skein_core::Error),
    /// The data plane failed in a way that is not the dataset's fault.
    #[error(transparent)]
    Data(#[from] skein_data::Error),
}
