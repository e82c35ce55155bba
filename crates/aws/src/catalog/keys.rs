//! Keys, attribute values and error mapping of the catalog table: the leaf every other
//! part of the adapter builds on.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use skein_core::{Error, Result, Status};

use crate::config::sdk_message;

/// An item as the SDK reads and writes it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// The index that lists items of one kind.
pub const BY_KIND: &str = "ByKind";

/// Registrations a plan keeps in flight at once.
pub(super) const PUT_SPECS_IN_FLIGHT: usize = 16;

/// Shards of each kind's key in the `ByKind` index.
pub const KIND_SHARDS: u32 = 16;

/// The `ByKind` key of the item of `kind` named `id`: `<kind>#<n>`, `n` = 32-bit FNV-1a of
/// `id` mod [`KIND_SHARDS`] (stable across processes and Rust versions, unlike std's hasher).
pub fn kind_key(kind: &str, id: &str) -> String {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{kind}#{}", hash % KIND_SHARDS)
}

pub(super) fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("dynamodb: {e}"),
    }
}

pub(super) fn sdk<E, R>(
    what: &str,
    table: &str,
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> Error
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let msg = sdk_message(&e);
    let hint = if msg.contains("ResourceNotFound") {
        "; deploy the stack (infra/template.yaml) or check SKEIN_TABLE"
    } else {
        ""
    };
    backend(format!("{what} on table `{table}`: {msg}{hint}"))
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn ds_key(name: &str) -> String {
    format!("DS#{name}")
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

pub(super) fn now() -> String {
    skein_core::time::now()
}

/// A sortable, unique sort-key suffix: time to the nanosecond, then randomness.
pub(super) fn ordered_id() -> String {
    let t = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ");
    let r: u64 = rand_u64();
    format!("{t}#{r:016x}")
}

pub(super) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

pub(super) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(super) fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(super) fn req_s(item: &Item, name: &str, what: &str) -> Result<String> {
    get_s(item, name)
        .map(str::to_string)
        .ok_or_else(|| Error::Internal(format!("catalog {what} item lacks `{name}`")))
}

pub(super) fn status_of(text: &str) -> Result<Status> {
    text.parse::<Status>()
        .map_err(|_| Error::Internal(format!("catalog holds unknown status `{text}`")))
}

pub(super) fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &E,
) -> bool {
    matches!(
        e.code(),
        Some("ConditionalCheckFailedException") | Some("TransactionCanceledException")
    )
}

pub(super) fn now_string() -> String {
    now()
}

pub(super) fn driver_key(key: &str) -> String {
    format!("DRIVER#{key}")
}
