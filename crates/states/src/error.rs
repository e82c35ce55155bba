//! The crate's errors, in one place: what the caller did wrong or what the store could not
//! do. An execution's failure is not among them: ASL errors (`States.*`) are data, an
//! [`Outcome`](crate::engine::Outcome) or a [`Failure`](crate::failure::Failure).
//!
//! [`Error`] is what the engine's entry points return; the other types belong to one
//! reader each (definition, choice rule, path, intrinsic, mock config, store, status) or to
//! the `skein states` CLI ([`Usage`]) and are re-exported by their modules.

pub use crate::status::UnknownStatus;

/// The engine's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A store failure; fatal for the execution (it can be resumed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// One structural problem of a definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefinitionError {
    /// JSON pointer of the field at fault, e.g. `/States/Load/Next`.
    pub pointer: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// Every problem of a definition.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in the state machine definition:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

/// Why a rule could not be decided (a `States.Runtime` error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ChoiceError(pub String);

/// Why an intrinsic invocation could not be parsed or evaluated. AWS reports these as
/// `States.Runtime` (or `States.IntrinsicFailure`); each variant names the culprit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntrinsicError {
    /// The invocation is not well formed.
    #[error("syntax error in intrinsic function `{expr}` at position {position}: {message}")]
    Syntax {
        /// The whole invocation as written.
        expr: String,
        /// Byte offset of the problem in `expr`.
        position: usize,
        /// What is wrong there.
        message: String,
    },
    /// No intrinsic has this name.
    #[error("unknown intrinsic function `{function}`")]
    UnknownFunction {
        /// The name as written, e.g. `States.Foo`.
        function: String,
    },
    /// The function was given too few or too many arguments.
    #[error("{function} expects {expected} argument(s), got {actual}")]
    ArgumentCount {
        /// The function, e.g. `States.ArrayGetItem`.
        function: String,
        /// How many it takes, e.g. `2`, `2 or 3` or `at least 1`.
        expected: String,
        /// How many it was given.
        actual: usize,
    },
    /// An argument has the wrong type or value.
    #[error("{function}: argument {argument} {message}")]
    InvalidArgument {
        /// The function, e.g. `States.ArrayPartition`.
        function: String,
        /// The argument's position, from 1.
        argument: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A JSONPath argument could not be read.
    #[error("{function}: {source}")]
    Path {
        /// The function whose argument it is.
        function: String,
        /// Why the path failed.
        source: PathError,
    },
}

/// Why a JSONPath could not be parsed, read or written. Each variant names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is not valid JSONPath (or not a reference path where one is required).
    #[error("invalid JSONPath `{path}`: {message}")]
    Syntax {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A definite path selects nothing.
    #[error("the JSONPath `{path}` could not be found in the input")]
    NotFound {
        /// The path as written.
        path: String,
    },
    /// A ResultPath goes through a value that is neither an object nor, for an index, an
    /// array (AWS fails the state with `States.Runtime`).
    #[error("cannot set the JSONPath `{path}`: a value on the way is not an object")]
    NotAnObject {
        /// The path as written.
        path: String,
    },
}

/// A problem with a mock config, naming what to fix.
#[derive(Debug, thiserror::Error)]
#[error("mock config {file}: {message}")]
pub struct MockError {
    pub file: String,
    pub message: String,
}

/// A usage error of `skein states` (a file that cannot be read, an unknown execution):
/// exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// What the engine cannot do: an execution's own failure is not one of these but an
/// [`Outcome`](crate::engine::Outcome) with its ASL error and cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Definition(#[from] DefinitionErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("execution `{0}` is not in the store; `skein states list` shows the known ones")]
    UnknownExecution(String),
    #[error("execution `{id}` already ended {status}; nothing to resume")]
    Ended {
        id: String,
        status: crate::status::ExecutionStatus,
    },
    /// A name `StartExecution` would refuse (AWS's `InvalidName`).
    #[error("{0}")]
    InvalidName(String),
    /// The execution input is over AWS's payload quota; nothing was started.
    #[error(
        "the execution input is {bytes} bytes, over the {limit} bytes (256 KiB of UTF-8) Step Functions accepts (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); pass large data by reference, e.g. as an S3 URI"
    )]
    InputTooLarge { bytes: usize, limit: usize },
}
