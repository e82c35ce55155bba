//! The adapter's handle on its table and the reads and writes its parts share: single
//! items, partition and index queries, records read from items, history items.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use skein_core::catalog::{DatasetRecord, HistoryEntry, RunRecord};
use skein_core::{DatasetSpec, Error, Result};

use super::keys::*;
use crate::config::AwsSettings;

/// The DynamoDB catalog.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoCatalog {
    /// A conditional write's result: `Some(output)` when written, `None` when its
    /// condition failed (nothing was written), or the backend error naming `what`.
    pub(super) fn written<T, E, R>(
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

    pub(super) async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>> {
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
    pub(super) async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>> {
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
    pub(super) async fn query_kind(&self, kind: &str) -> Result<Vec<Item>> {
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
    pub(super) async fn query_kind_key(&self, kind: &str) -> Result<Vec<Item>> {
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
    pub(super) async fn spec_hashes(&self, names: Vec<&str>) -> Result<HashMap<String, String>> {
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

    pub(super) fn record(item: &Item) -> Result<DatasetRecord> {
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

    pub(super) fn run_of(item: &Item) -> Result<RunRecord> {
        Ok(RunRecord {
            run_id: req_s(item, "runId", "run")?,
            started_at: req_s(item, "startedAt", "run")?,
            finished_at: get_s(item, "finishedAt").map(str::to_string),
            status: req_s(item, "status", "run")?.parse()?,
            total: get_n(item, "total").unwrap_or(0) as u64,
            succeeded: get_n(item, "succeeded").unwrap_or(0) as u64,
            failed: get_n(item, "failed").unwrap_or(0) as u64,
            rows: get_n(item, "rows").unwrap_or(0) as u64,
        })
    }

    pub(super) fn history_put(
        &self,
        name: &str,
        entry: &HistoryEntry,
    ) -> Result<TransactWriteItem> {
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
        self.put_item(item, None)
    }

    /// `item` as one put of a transaction, conditional on `condition` when given (e.g.
    /// `attribute_not_exists(PK)`: create only).
    pub(super) fn put_item(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update of a known dataset's item (`updatedAt` is bound as `:at`).
    pub(super) async fn update_known(
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
