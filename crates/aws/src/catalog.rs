//! The catalog on one DynamoDB table.
//!
//! # Key design
//! | item | `PK` | `SK` | `kind` (GSI `ByKind`) | what it holds |
//! | --- | --- | --- | --- | --- |
//! | dataset | `DS#<name>` | `META` | `dataset#<n>` | spec (JSON), hash, spec version, status, reason, current version, rows, last verification, approval token, lease holder + expiry, attempt counter |
//! | history | `DS#<name>` | `H#<time>#<id>` | – | one status change |
//! | version | `DS#<name>` | `V#<time>#<id>` | – | a published/restored version: the manifest's summary, location and sha256 (never its file list) |
//! | attempt | `DS#<name>` | `A#<0000000001>` | – | one migration attempt |
//! | run | `RUN#<id>` | `META` | `run#<n>` | run record with counters |
//! | semaphore | `SEM#<system>` | `META` | – | readers of a source system now |
//! | holder | `SEM#<system>` | `HOLDER#<holder>` | – | one reader's slot (with `ttl`) |
//! | driver | `DRIVER#<key>` | `META` | – | the process driving a run or a directory: run id, pid, host, expiry |
//!
//! The GSI `ByKind` (`kind` hash, `PK` range) lists datasets and runs. Its key is sharded,
//! `dataset#<n>` / `run#<n>` with `n` = FNV-1a of the name (run id) mod [`KIND_SHARDS`], so
//! the index's writes (every dataset update is one, the index projects all attributes)
//! spread over 16 partition keys instead of one
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-gsi-sharding.html>;
//! a partition key takes at most 1,000 write units a second:
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>).
//! A listing queries every shard (and the unsharded key items written before sharding
//! hold) in parallel and sorts the merge. A dataset's history, versions and attempts are
//! one `Query` on its partition, in order.
//!
//! **Invariant:** every status change is one `TransactWriteItems`: the dataset update with
//! `ConditionExpression status = :from` (a legal `from → to` checked before it is sent)
//! and the history item; a lost race writes nothing and is reported as
//! [`Error::StatusConflict`]. Leases and semaphore slots are conditional writes too.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use skein_core::catalog::{
    Attempt, Catalog, Counter, DatasetRecord, Driver, HistoryEntry, RunRecord, VersionAction,
    VersionRecord,
};
use skein_core::manifest::ManifestSummary;
use skein_core::{DatasetSpec, Error, Result, Status};

use crate::config::{AwsSettings, sdk_message};

type Item = HashMap<String, AttributeValue>;

/// The index that lists items of one kind.
pub const BY_KIND: &str = "ByKind";

/// Registrations a plan keeps in flight at once.
const PUT_SPECS_IN_FLIGHT: usize = 16;

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

/// The DynamoDB catalog.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("dynamodb: {e}"),
    }
}

fn sdk<E, R>(what: &str, table: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> Error
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

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ds_key(name: &str) -> String {
    format!("DS#{name}")
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

fn now() -> String {
    skein_core::time::now()
}

/// A sortable, unique sort-key suffix: time to the nanosecond, then randomness.
fn ordered_id() -> String {
    let t = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ");
    let r: u64 = rand_u64();
    format!("{t}#{r:016x}")
}

fn rand_u64() -> u64 {
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

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn req_s(item: &Item, name: &str, what: &str) -> Result<String> {
    get_s(item, name)
        .map(str::to_string)
        .ok_or_else(|| Error::Internal(format!("catalog {what} item lacks `{name}`")))
}

fn status_of(text: &str) -> Result<Status> {
    text.parse::<Status>()
        .map_err(|_| Error::Internal(format!("catalog holds unknown status `{text}`")))
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some("ConditionalCheckFailedException") | Some("TransactionCanceledException")
    )
}

impl DynamoCatalog {
    /// A conditional write's result: `Some(output)` when written, `None` when its
    /// condition failed (nothing was written), or the backend error naming `what`.
    fn written<T, E, R>(
        &self,
        what: &str,
        result: std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    ) -> Result<Option<T>>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match result {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(None),
            Err(e) => Err(sdk(what, &self.table, e)),
        }
    }

    /// The catalog on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> DynamoCatalog {
        DynamoCatalog {
            client,
            table: table.into(),
        }
    }

    /// The catalog on `table`, with a client built from `settings`.
    pub async fn connect(settings: &AwsSettings, table: &str) -> DynamoCatalog {
        let config = settings.sdk_config().await;
        DynamoCatalog::new(Client::new(&config), table)
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with the key design above (tests and local set-ups; on AWS the
    /// template creates it). An existing table is left as it is.
    pub async fn create_table(&self) -> Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key_el = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(backend)
        };
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .attribute_definitions(attr("kind")?)
            .key_schema(key_el("PK", KeyType::Hash)?)
            .key_schema(key_el("SK", KeyType::Range)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(BY_KIND)
                    .key_schema(key_el("kind", KeyType::Hash)?)
                    .key_schema(key_el("PK", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(sdk("CreateTable", &self.table, e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("ttl")
                    .enabled(true)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(|e| sdk("UpdateTimeToLive", &self.table, e))?;
        Ok(())
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk("GetItem", &self.table, e))?;
        Ok(out.item)
    }

    /// Every item of a partition whose sort key starts with `prefix`, in order.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk("Query", &self.table, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Every item of a kind, through the `ByKind` index: every shard and the unsharded key
    /// of items written before sharding, queried in parallel; callers sort the merge.
    async fn query_kind(&self, kind: &str) -> Result<Vec<Item>> {
        let keys = (0..KIND_SHARDS)
            .map(|n| format!("{kind}#{n}"))
            .chain([kind.to_string()]);
        let shards = futures::future::try_join_all(
            keys.map(|k| async move { self.query_kind_key(&k).await }),
        )
        .await?;
        Ok(shards.into_iter().flatten().collect())
    }

    /// Every item under one `ByKind` key, all pages.
    async fn query_kind_key(&self, kind: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_KIND)
                .key_condition_expression("kind = :k")
                .expression_attribute_values(":k", s(kind))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk("Query", &self.table, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The registered spec hash of each of `names` that is registered (consistent reads,
    /// unprocessed keys asked again).
    async fn spec_hashes(&self, names: Vec<&str>) -> Result<HashMap<String, String>> {
        // Keys of one request must differ.
        let names: std::collections::BTreeSet<&str> = names.into_iter().collect();
        let keys: Vec<Item> = names.into_iter().map(|n| key(ds_key(n), "META")).collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#name, specHash")
                .expression_attribute_names("#name", "name")
                .consistent_read(true)
                .build()
                .map_err(backend)?,
        );
        let mut hashes = HashMap::new();
        let mut round = 0u32;
        while let Some(req) = request.take() {
            if round > 0 {
                // Unprocessed keys: ask again after a growing pause, as AWS advises.
                tokio::time::sleep(std::time::Duration::from_millis(50 << round.min(5))).await;
            }
            round += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, req)
                .send()
                .await
                .map_err(|e| sdk("BatchGetItem", &self.table, e))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                if let (Some(n), Some(h)) = (get_s(&item, "name"), get_s(&item, "specHash")) {
                    hashes.insert(n.to_string(), h.to_string());
                }
            }
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
        }
        Ok(hashes)
    }

    fn record(item: &Item) -> Result<DatasetRecord> {
        let spec_json = req_s(item, "spec", "dataset")?;
        let spec: DatasetSpec = serde_json::from_str(&spec_json)
            .map_err(|e| Error::Internal(format!("catalog holds an unreadable spec: {e}")))?;
        Ok(DatasetRecord {
            name: req_s(item, "name", "dataset")?,
            spec,
            spec_hash: req_s(item, "specHash", "dataset")?,
            spec_version: get_n(item, "specVersion").unwrap_or(1) as u32,
            status: status_of(&req_s(item, "status", "dataset")?)?,
            reason: get_s(item, "reason").map(str::to_string),
            current_version: get_n(item, "currentVersion").map(|v| v as u64),
            rows: get_n(item, "rows").map(|v| v as u64),
            last_verification: get_s(item, "lastVerification").map(str::to_string),
            approval_token: get_s(item, "approvalToken").map(str::to_string),
            updated_at: req_s(item, "updatedAt", "dataset")?,
        })
    }

    fn run_of(item: &Item) -> Result<RunRecord> {
        Ok(RunRecord {
            run_id: req_s(item, "runId", "run")?,
            started_at: req_s(item, "startedAt", "run")?,
            finished_at: get_s(item, "finishedAt").map(str::to_string),
            status: req_s(item, "status", "run")?,
            total: get_n(item, "total").unwrap_or(0) as u64,
            succeeded: get_n(item, "succeeded").unwrap_or(0) as u64,
            failed: get_n(item, "failed").unwrap_or(0) as u64,
            rows: get_n(item, "rows").unwrap_or(0) as u64,
        })
    }

    fn history_put(&self, name: &str, entry: &HistoryEntry) -> Result<TransactWriteItem> {
        let mut item = key(ds_key(name), &format!("H#{}", ordered_id()));
        item.insert("at".into(), s(&entry.at));
        item.insert("to".into(), s(entry.to.as_str()));
        if let Some(f) = entry.from {
            item.insert("from".into(), s(f.as_str()));
        }
        if let Some(r) = &entry.reason {
            item.insert("reason".into(), s(r));
        }
        if let Some(r) = &entry.run_id {
            item.insert("runId".into(), s(r));
        }
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(backend)?,
            )
            .build())
    }

    /// Takes a reader slot of a source system for `holder`, if fewer than `cap` are taken
    /// (or `holder` has one already). Slots expire after `ttl_secs` so that a crashed
    /// reader frees its slot. Returns whether the slot was taken.
    pub async fn acquire_slot(
        &self,
        system: &str,
        holder: &str,
        cap: u32,
        ttl_secs: u64,
    ) -> Result<bool> {
        let pk = format!("SEM#{system}");
        let now = unix_now();
        // Free the slots of readers whose time ran out (each a conditional delete).
        for h in self.query_prefix(pk.clone(), "HOLDER#").await? {
            let expired = get_n(&h, "ttl").is_some_and(|t| t <= now);
            let sk = get_s(&h, "SK").unwrap_or_default().to_string();
            if expired && sk != format!("HOLDER#{holder}") {
                let _ = self.release_slot_key(&pk, &sk, Some(now)).await;
            }
        }
        if self
            .get(pk.clone(), &format!("HOLDER#{holder}"))
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let mut holder_item = key(pk.clone(), &format!("HOLDER#{holder}"));
        holder_item.insert("ttl".into(), n(now.saturating_add(ttl_secs as i64)));
        holder_item.insert("since".into(), s(now_string()));
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk.clone(), "META")))
                            .update_expression("ADD readers :one SET #sys = :sys")
                            .condition_expression("attribute_not_exists(readers) OR readers < :cap")
                            .expression_attribute_names("#sys", "system")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(cap))
                            .expression_attribute_values(":sys", s(system))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(holder_item))
                            .condition_expression("attribute_not_exists(PK)")
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            )
            .send()
            .await;
        Ok(self.written("TransactWriteItems", result)?.is_some())
    }

    /// Gives back `holder`'s slot of a source system (nothing if it holds none).
    pub async fn release_slot(&self, system: &str, holder: &str) -> Result<()> {
        self.release_slot_key(&format!("SEM#{system}"), &format!("HOLDER#{holder}"), None)
            .await
    }

    async fn release_slot_key(&self, pk: &str, sk: &str, expired_by: Option<i64>) -> Result<()> {
        let mut delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_string(), sk)));
        delete = match expired_by {
            Some(t) => delete
                .condition_expression("attribute_exists(PK) AND #ttl <= :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(t)),
            None => delete.condition_expression("attribute_exists(PK)"),
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(backend)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk.to_string(), "META")))
                            .update_expression("ADD readers :minus")
                            .condition_expression("readers > :zero")
                            .expression_attribute_values(":minus", n(-1))
                            .expression_attribute_values(":zero", n(0))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            )
            .send()
            .await;
        // A failed condition means there was nothing to release.
        self.written("TransactWriteItems", result)?;
        Ok(())
    }

    /// Keeps the reader caps of source systems (from the run's `skein.yaml`), for the
    /// migrate workers.
    pub async fn put_system_caps(
        &self,
        caps: &std::collections::BTreeMap<String, u32>,
    ) -> Result<()> {
        for (system, cap) in caps {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(format!("SEM#{system}"), "META")))
                .update_expression("SET cap = :cap, #sys = :sys")
                .expression_attribute_names("#sys", "system")
                .expression_attribute_values(":cap", n(cap))
                .expression_attribute_values(":sys", s(system))
                .send()
                .await
                .map_err(|e| sdk("UpdateItem", &self.table, e))?;
        }
        Ok(())
    }

    /// The reader cap of a source system, if a plan set one.
    pub async fn system_cap(&self, system: &str) -> Result<Option<u32>> {
        Ok(self
            .get(format!("SEM#{system}"), "META")
            .await?
            .and_then(|i| get_n(&i, "cap"))
            .map(|c| c.max(0) as u32))
    }

    /// Readers of a source system now.
    pub async fn slots_taken(&self, system: &str) -> Result<u32> {
        Ok(self
            .get(format!("SEM#{system}"), "META")
            .await?
            .and_then(|i| get_n(&i, "readers"))
            .unwrap_or(0)
            .max(0) as u32)
    }
}

fn now_string() -> String {
    now()
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn put_spec(&self, spec: &DatasetSpec, spec_hash: &str) -> Result<DatasetRecord> {
        let name = spec.name();
        let spec_json = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
        // Optimistic: read, then a conditional write; a lost race reads again.
        for _ in 0..20 {
            let at = now();
            match self.get(ds_key(name), "META").await? {
                None => {
                    let mut item = key(ds_key(name), "META");
                    item.insert("kind".into(), s(kind_key("dataset", name)));
                    item.insert("name".into(), s(name));
                    item.insert("spec".into(), s(&spec_json));
                    item.insert("specHash".into(), s(spec_hash));
                    item.insert("specVersion".into(), n(1));
                    item.insert("status".into(), s(Status::Pending.as_str()));
                    item.insert("updatedAt".into(), s(&at));
                    let history = self.history_put(
                        name,
                        &HistoryEntry {
                            at: at.clone(),
                            from: None,
                            to: Status::Pending,
                            reason: Some("registered".into()),
                            run_id: None,
                        },
                    )?;
                    let result = self
                        .client
                        .transact_write_items()
                        .transact_items(
                            TransactWriteItem::builder()
                                .put(
                                    Put::builder()
                                        .table_name(&self.table)
                                        .set_item(Some(item))
                                        .condition_expression("attribute_not_exists(PK)")
                                        .build()
                                        .map_err(backend)?,
                                )
                                .build(),
                        )
                        .transact_items(history)
                        .send()
                        .await;
                    if self.written("TransactWriteItems", result)?.is_none() {
                        continue; // lost a race: read again
                    }
                }
                Some(item) if get_s(&item, "specHash") == Some(spec_hash) => {}
                Some(item) => {
                    let old = get_s(&item, "specHash").unwrap_or_default().to_string();
                    let result = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key(ds_key(name), "META")))
                        .update_expression(
                            "SET spec = :spec, specHash = :hash, updatedAt = :at, kind = :kind \
                             ADD specVersion :one",
                        )
                        .condition_expression("specHash = :old")
                        // An item written before sharding moves to its shard.
                        .expression_attribute_values(":kind", s(kind_key("dataset", name)))
                        .expression_attribute_values(":spec", s(&spec_json))
                        .expression_attribute_values(":hash", s(spec_hash))
                        .expression_attribute_values(":at", s(&at))
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":old", s(old))
                        .send()
                        .await;
                    if self.written("UpdateItem", result)?.is_none() {
                        continue; // lost a race: read again
                    }
                }
            }
            return self.dataset(name).await?.ok_or_else(|| {
                Error::Internal(format!("dataset `{name}` vanished after registration"))
            });
        }
        Err(backend(format!(
            "registering `{name}` lost 20 races in a row; is something rewriting it in a loop?"
        )))
    }

    /// One `BatchGetItem` per 100 datasets reads the registered spec hashes
    /// (`BatchGetItem` takes at most 100 keys; `BatchWriteItem` 25 puts but no condition:
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-api>);
    /// specs already registered with the same hash need no write. The others are
    /// registered by [`Catalog::put_spec`], whose writes are conditional (a new dataset must
    /// not exist, a changed one must still have the hash read), [`PUT_SPECS_IN_FLIGHT`] at
    /// a time.
    async fn put_specs(&self, specs: &[(&DatasetSpec, &str)]) -> Result<()> {
        use futures::future::BoxFuture;
        use futures::{StreamExt, TryStreamExt};
        // Futures built first, then run a bounded number at a time (a closure over the
        // borrowed specs inside the stream would not be general enough for async_trait).
        let reads: Vec<BoxFuture<'_, Result<HashMap<String, String>>>> = specs
            .chunks(100)
            .map(|chunk| {
                let names: Vec<&str> = chunk.iter().map(|(s, _)| s.name()).collect();
                Box::pin(self.spec_hashes(names)) as BoxFuture<'_, _>
            })
            .collect();
        let known: Vec<HashMap<String, String>> = futures::stream::iter(reads)
            .buffer_unordered(PUT_SPECS_IN_FLIGHT)
            .try_collect()
            .await?;
        let known: HashMap<String, String> = known.into_iter().flatten().collect();
        let writes: Vec<BoxFuture<'_, Result<()>>> = specs
            .iter()
            .filter(|(s, h)| known.get(s.name()).map(String::as_str) != Some(*h))
            .map(|&(s, h)| {
                Box::pin(async move { self.put_spec(s, h).await.map(|_| ()) }) as BoxFuture<'_, _>
            })
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(PUT_SPECS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>> {
        self.get(ds_key(name), "META")
            .await?
            .map(|i| DynamoCatalog::record(&i))
            .transpose()
    }

    async fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let mut records = self
            .query_kind("dataset")
            .await?
            .iter()
            .map(DynamoCatalog::record)
            .collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    async fn transition(
        &self,
        name: &str,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        if !from.can_become(to) {
            // Refused before anything is sent; but an unknown dataset says so first.
            if self.get(ds_key(name), "META").await?.is_none() {
                return Err(Error::UnknownDataset {
                    dataset: name.to_string(),
                });
            }
            return Err(Error::IllegalTransition {
                dataset: name.to_string(),
                from,
                to,
            });
        }
        let at = now();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":at", s(&at));
        update = match reason {
            Some(r) => update
                .update_expression("SET #status = :to, reason = :reason, updatedAt = :at")
                .expression_attribute_values(":reason", s(r)),
            None => update.update_expression("SET #status = :to, updatedAt = :at REMOVE reason"),
        };
        let history = self.history_put(
            name,
            &HistoryEntry {
                at: at.clone(),
                from: Some(from),
                to,
                reason: reason.map(str::to_string),
                run_id: run_id.map(str::to_string),
            },
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(update.build().map_err(backend)?)
                    .build(),
            )
            .transact_items(history)
            .send()
            .await;
        match self.written("TransactWriteItems", result)? {
            Some(_) => Ok(()),
            None => match self.get(ds_key(name), "META").await? {
                None => Err(Error::UnknownDataset {
                    dataset: name.to_string(),
                }),
                Some(item) => Err(Error::StatusConflict {
                    dataset: name.to_string(),
                    expected: from,
                    actual: status_of(get_s(&item, "status").unwrap_or("pending"))?,
                }),
            },
        }
    }

    async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.query_prefix(ds_key(name), "H#")
            .await?
            .iter()
            .map(|i| {
                Ok(HistoryEntry {
                    at: req_s(i, "at", "history")?,
                    from: get_s(i, "from").map(status_of).transpose()?,
                    to: status_of(&req_s(i, "to", "history")?)?,
                    reason: get_s(i, "reason").map(str::to_string),
                    run_id: get_s(i, "runId").map(str::to_string),
                })
            })
            .collect()
    }

    async fn record_version(
        &self,
        name: &str,
        action: VersionAction,
        manifest: &ManifestSummary,
    ) -> Result<()> {
        let at = now();
        // The summary only: its size does not depend on the number of files, so the item
        // stays far below DynamoDB's 400 KB item limit
        // (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items).
        let manifest_json =
            serde_json::to_string(manifest).map_err(|e| Error::Internal(e.to_string()))?;
        let action = match action {
            VersionAction::Published => "published",
            VersionAction::Restored => "restored",
        };
        let mut item = key(ds_key(name), &format!("V#{}", ordered_id()));
        item.insert("at".into(), s(&at));
        item.insert("action".into(), s(action));
        item.insert("version".into(), n(manifest.version));
        item.insert("summary".into(), s(manifest_json));
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(ds_key(name), "META")))
                            .update_expression(
                                "SET currentVersion = :v, #rows = :rows, updatedAt = :at",
                            )
                            .condition_expression("attribute_exists(PK)")
                            .expression_attribute_names("#rows", "rows")
                            .expression_attribute_values(":v", n(manifest.version))
                            .expression_attribute_values(":rows", n(manifest.rows))
                            .expression_attribute_values(":at", s(&at))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            )
            .send()
            .await;
        match self.written("TransactWriteItems", result)? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownDataset {
                dataset: name.to_string(),
            }),
        }
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        self.query_prefix(ds_key(name), "V#")
            .await?
            .iter()
            .map(|i| {
                let action = match get_s(i, "action") {
                    Some("published") => VersionAction::Published,
                    Some("restored") => VersionAction::Restored,
                    other => {
                        return Err(Error::Internal(format!(
                            "catalog holds version action `{other:?}`"
                        )));
                    }
                };
                // Items written before summaries were kept hold the whole manifest.
                let stored = match get_s(i, "summary") {
                    Some(summary) => summary.to_string(),
                    None => req_s(i, "manifest", "version")?,
                };
                let manifest = ManifestSummary::from_stored_json(&stored)
                    .map_err(|e| Error::Internal(format!("unreadable version summary: {e}")))?;
                Ok(VersionRecord {
                    at: req_s(i, "at", "version")?,
                    action,
                    manifest,
                })
            })
            .collect()
    }

    async fn set_verification(&self, name: &str, summary: &str) -> Result<()> {
        self.update_known(
            name,
            "SET lastVerification = :v, updatedAt = :at",
            vec![(":v", s(summary))],
        )
        .await
    }

    async fn set_approval_token(&self, name: &str, token: Option<&str>) -> Result<()> {
        match token {
            Some(t) => {
                self.update_known(
                    name,
                    "SET approvalToken = :t, updatedAt = :at",
                    vec![(":t", s(t))],
                )
                .await
            }
            None => {
                self.update_known(name, "SET updatedAt = :at REMOVE approvalToken", vec![])
                    .await
            }
        }
    }

    async fn start_attempt(&self, name: &str, run_id: &str) -> Result<u32> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .update_expression("ADD attemptSeq :one")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let out = match self.written("UpdateItem", out)? {
            Some(o) => o,
            None => {
                return Err(Error::UnknownDataset {
                    dataset: name.to_string(),
                });
            }
        };
        let attempt = out
            .attributes
            .as_ref()
            .and_then(|a| get_n(a, "attemptSeq"))
            .ok_or_else(|| Error::Internal("attempt counter missing after ADD".into()))?
            as u32;
        let mut item = key(ds_key(name), &format!("A#{attempt:010}"));
        item.insert("attempt".into(), n(attempt));
        item.insert("runId".into(), s(run_id));
        item.insert("startedAt".into(), s(now()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk("PutItem", &self.table, e))?;
        Ok(attempt)
    }

    async fn finish_attempt(
        &self,
        name: &str,
        attempt: u32,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), &format!("A#{attempt:010}"))))
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":f", s(now()))
            .expression_attribute_values(":o", s(outcome));
        req = match error {
            Some(e) => req
                .update_expression("SET finishedAt = :f, outcome = :o, #error = :e")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":e", s(e)),
            None => req.update_expression("SET finishedAt = :f, outcome = :o"),
        };
        match self.written("UpdateItem", req.send().await)? {
            Some(_) => Ok(()),
            None => Err(Error::Internal(format!(
                "dataset `{name}` has no attempt {attempt} to finish"
            ))),
        }
    }

    async fn attempts(&self, name: &str) -> Result<Vec<Attempt>> {
        self.query_prefix(ds_key(name), "A#")
            .await?
            .iter()
            .map(|i| {
                Ok(Attempt {
                    run_id: req_s(i, "runId", "attempt")?,
                    attempt: get_n(i, "attempt").unwrap_or(0) as u32,
                    started_at: req_s(i, "startedAt", "attempt")?,
                    finished_at: get_s(i, "finishedAt").map(str::to_string),
                    outcome: get_s(i, "outcome").map(str::to_string),
                    error: get_s(i, "error").map(str::to_string),
                })
            })
            .collect()
    }

    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        let mut item = key(format!("RUN#{}", run.run_id), "META");
        item.insert("kind".into(), s(kind_key("run", &run.run_id)));
        item.insert("runId".into(), s(&run.run_id));
        item.insert("startedAt".into(), s(&run.started_at));
        if let Some(f) = &run.finished_at {
            item.insert("finishedAt".into(), s(f));
        }
        item.insert("status".into(), s(&run.status));
        item.insert("total".into(), n(run.total));
        item.insert("succeeded".into(), n(run.succeeded));
        item.insert("failed".into(), n(run.failed));
        item.insert("rows".into(), n(run.rows));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk("PutItem", &self.table, e))?;
        Ok(())
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.get(format!("RUN#{run_id}"), "META")
            .await?
            .map(|i| DynamoCatalog::run_of(&i))
            .transpose()
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = self
            .query_kind("run")
            .await?
            .iter()
            .map(DynamoCatalog::run_of)
            .collect::<Result<Vec<_>>>()?;
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.run_id.cmp(&a.run_id))
        });
        Ok(runs)
    }

    async fn add_to_run(&self, run_id: &str, counter: Counter, by: u64) -> Result<()> {
        let attr = match counter {
            Counter::Succeeded => "succeeded",
            Counter::Failed => "failed",
            Counter::Rows => "rows",
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("RUN#{run_id}"), "META")))
            .update_expression("ADD #c :n")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#c", attr)
            .expression_attribute_values(":n", n(by))
            .send()
            .await;
        match self.written("UpdateItem", result)? {
            Some(_) => Ok(()),
            None => Err(Error::Internal(format!(
                "run `{run_id}` is not in the catalog"
            ))),
        }
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<()> {
        let now = unix_now();
        let expires = now.saturating_add(ttl_secs as i64);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .update_expression("SET leaseHolder = :h, leaseExpires = :e")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(leaseHolder) OR \
                 leaseExpires <= :now OR leaseHolder = :h)",
            )
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":e", n(expires))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match self.written("UpdateItem", result)? {
            Some(_) => Ok(()),
            None => match self.get(ds_key(name), "META").await? {
                None => Err(Error::UnknownDataset {
                    dataset: name.to_string(),
                }),
                Some(item) => Err(Error::LeaseHeld {
                    dataset: name.to_string(),
                    holder: get_s(&item, "leaseHolder").unwrap_or_default().to_string(),
                    expires: get_n(&item, "leaseExpires")
                        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                        .map(skein_core::time::format)
                        .unwrap_or_default(),
                }),
            },
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .update_expression("REMOVE leaseHolder, leaseExpires")
            .condition_expression("leaseHolder = :h")
            .expression_attribute_values(":h", s(holder))
            .send()
            .await;
        // A failed condition means there was nothing to release.
        self.written("UpdateItem", result)?;
        Ok(())
    }

    async fn take_over_lease(&self, name: &str, from: &str, to: &str, ttl_secs: u64) -> Result<()> {
        let expires = unix_now().saturating_add(ttl_secs as i64);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .update_expression("SET leaseHolder = :to, leaseExpires = :e")
            .condition_expression("attribute_exists(PK) AND leaseHolder = :from")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":e", n(expires))
            .send()
            .await;
        match self.written("UpdateItem", result)? {
            Some(_) => Ok(()),
            // Not `from`'s any more: free (take it as usual) or someone else's (refused).
            None => self.acquire_lease(name, to, ttl_secs).await,
        }
    }

    async fn claim_driver(&self, key_: &str, me: &Driver, replace: Option<&Driver>) -> Result<()> {
        let mut condition = "attribute_not_exists(PK) OR expiresAt = :zero OR \
                             (driverPid = :pid AND driverHost = :host)"
            .to_string();
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("PK", s(driver_key(key_)))
            .item("SK", s("META"))
            .item("runId", s(&me.run_id))
            .item("driverPid", n(me.pid))
            .item("driverHost", s(&me.host))
            .item("expiresAt", n(me.expires_at))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pid", n(me.pid))
            .expression_attribute_values(":host", s(&me.host));
        if let Some(r) = replace {
            condition.push_str(
                " OR (driverPid = :rpid AND driverHost = :rhost AND runId = :rrun AND expiresAt = :rexp)",
            );
            req = req
                .expression_attribute_values(":rpid", n(r.pid))
                .expression_attribute_values(":rhost", s(&r.host))
                .expression_attribute_values(":rrun", s(&r.run_id))
                .expression_attribute_values(":rexp", n(r.expires_at));
        }
        let result = req.condition_expression(condition).send().await;
        match self.written("PutItem", result)? {
            Some(_) => Ok(()),
            None => match self.driver(key_).await? {
                Some(d) => Err(d.held(key_)),
                // released between the put and the read: try again once
                None => Err(Error::Backend {
                    message: format!(
                        "dynamodb: the driver of {key_} changed while claiming it; try again"
                    ),
                }),
            },
        }
    }

    async fn driver(&self, key_: &str) -> Result<Option<Driver>> {
        let Some(item) = self.get(driver_key(key_), "META").await? else {
            return Ok(None);
        };
        Ok(Some(Driver {
            run_id: req_s(&item, "runId", "driver")?,
            pid: get_n(&item, "driverPid").unwrap_or(0) as u32,
            host: req_s(&item, "driverHost", "driver")?,
            expires_at: get_n(&item, "expiresAt").unwrap_or(0),
        }))
    }

    async fn release_driver(&self, key_: &str, me: &Driver) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(driver_key(key_), "META")))
            .update_expression("SET expiresAt = :zero")
            .condition_expression("driverPid = :pid AND driverHost = :host")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pid", n(me.pid))
            .expression_attribute_values(":host", s(&me.host))
            .send()
            .await;
        // A failed condition: not ours (taken over), nothing to release.
        self.written("UpdateItem", result)?;
        Ok(())
    }
}

fn driver_key(key: &str) -> String {
    format!("DRIVER#{key}")
}

impl DynamoCatalog {
    /// An update of a known dataset's item (`updatedAt` is bound as `:at`).
    async fn update_known(
        &self,
        name: &str,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(ds_key(name), "META")))
            .update_expression(expression)
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", s(now()));
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        match self.written("UpdateItem", req.send().await)? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownDataset {
                dataset: name.to_string(),
            }),
        }
    }
}
