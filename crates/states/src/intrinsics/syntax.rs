//! An intrinsic invocation as parsed ([`Call`], [`Expr`]), the functions there are and
//! their arities, and the checks parsing and evaluation share.

use serde_json::Value;

use crate::error::IntrinsicError;

/// How deeply invocations may nest (the AWS limit).
pub const MAX_NESTING: usize = 10;

/// Every intrinsic function with its fewest and most arguments.
pub(super) const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// An argument.
#[derive(Debug)]
pub(super) enum Expr {
    /// A number, boolean or null.
    Literal(Value),
    /// A quoted string; `placeholders` are the byte offsets of its unescaped `{}`.
    Str {
        value: String,
        placeholders: Vec<usize>,
    },
    Path(String),
    Call(Call),
}

/// An invocation: `States.Name(args)`.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) function: String,
    pub(super) args: Vec<Expr>,
}

/// Fails unless a States.Format template has as many `{}` as values follow it.
pub(super) fn check_placeholders(
    function: &str,
    wanted: usize,
    given: usize,
) -> Result<(), IntrinsicError> {
    if wanted == given {
        return Ok(());
    }
    Err(IntrinsicError::InvalidArgument {
        function: function.to_owned(),
        argument: 1,
        message: format!("(the template) has {wanted} `{{}}` but {given} value(s) follow"),
    })
}
