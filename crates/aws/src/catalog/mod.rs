//! The catalog on one DynamoDB table.
//!
//! # Key design
//! | item | `PK` | `SK` | `kind` (GSI `ByKind`) | what it holds |
//! | --- | --- | --- | --- | --- |
//! | dataset | `DS#<name>` | `META` | `dataset#<n>` | spec (JSON), hash, spec version, status, reason, current version, rows, last verification, approval token, lease holder + expiry, attempt counter |
//! | history | `DS#<name>` | `H#<time>#<id>` | – | one status change |
//! | version | `DS#<name>` | `V#<time>#<id>` | – | a published/restored version: the manifest's summary, location and sha256 (never its file list) |
//! | attempt | `DS#<name>` | `A#<0000000001>` | – | one migration attempt |
//! | run | `RUN#<id>` | `META` | `run#<n>` | run record with counters (and `end_<end>`: how many datasets ended so) |
//! | run end | `RUN#<id>` | `END#<dataset>` | – | how the dataset's migration ended in the run |
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
//!
//! # Layout
//! `keys` (key and attribute helpers, error mapping) ← `client` (the handle, shared reads,
//! records from items) ← `table` (definition), `slots` (reader slots), `leases` (leases
//! and drivers) ← this module (the `Catalog` port).

mod client;
mod ends;
mod keys;
mod leases;
mod slots;
mod table;

use async_trait::async_trait;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem, Update};
use skein_core::catalog::{
    Attempt, Catalog, Counter, DatasetRecord, Driver, EndCounts, HistoryEntry, RunEnd, RunRecord,
    VersionAction, VersionRecord,
};
use skein_core::manifest::ManifestSummary;
use skein_core::{DatasetSpec, Error, Result, Status};

pub use client::DynamoCatalog;
use keys::*;
pub use keys::{BY_KIND, KIND_SHARDS, kind_key};

impl DynamoCatalog {
    /// A status change, fenced by an attempt when one is given: the dataset's attempt
    /// counter is part of the same conditional update.
    async fn transition_fenced(
        &self,
        name: &str,
        fence: Option<u32>,
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
            .condition_expression(match fence {
                // the attempt counter start_attempt ADDs to is the fencing token
                Some(_) => "#status = :from AND attemptSeq = :attempt",
                None => "#status = :from",
            })
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":at", s(&at));
        if let Some(attempt) = fence {
            update = update.expression_attribute_values(":attempt", n(attempt));
        }
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
                Some(item)
                    if fence.is_some_and(|a| get_n(&item, "attemptSeq") != Some(i64::from(a))) =>
                {
                    Err(Error::Superseded {
                        dataset: name.to_string(),
                        run_id: run_id.unwrap_or_default().to_string(),
                        attempt: fence.unwrap_or_default(),
                        current: get_n(&item, "attemptSeq").unwrap_or(0) as u32,
                    })
                }
                Some(item) => Err(Error::StatusConflict {
                    dataset: name.to_string(),
                    expected: from,
                    actual: status_of(get_s(&item, "status").unwrap_or("pending"))?,
                }),
            },
        }
    }
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
                        .transact_items(self.put_item(item, Some("attribute_not_exists(PK)"))?)
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
        self.transition_fenced(name, None, from, to, reason, run_id)
            .await
    }

    async fn transition_in_attempt(
        &self,
        name: &str,
        attempt: u32,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        self.transition_fenced(name, Some(attempt), from, to, reason, run_id)
            .await
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
            .transact_items(self.put_item(item, None)?)
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
        item.insert("status".into(), s(run.status.as_str()));
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

    async fn record_end(&self, run_id: &str, dataset: &str, end: RunEnd) -> Result<()> {
        self.end_record(run_id, dataset, end).await
    }

    async fn end_counts(&self, run_id: &str) -> Result<EndCounts> {
        self.end_counts_of(run_id).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<()> {
        self.lease_acquire(name, holder, ttl_secs).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.lease_release(name, holder).await
    }

    async fn take_over_lease(&self, name: &str, from: &str, to: &str, ttl_secs: u64) -> Result<()> {
        self.lease_take_over(name, from, to, ttl_secs).await
    }

    async fn claim_driver(&self, key_: &str, me: &Driver, replace: Option<&Driver>) -> Result<()> {
        self.driver_claim(key_, me, replace).await
    }

    async fn driver(&self, key_: &str) -> Result<Option<Driver>> {
        self.driver_get(key_).await
    }

    async fn release_driver(&self, key_: &str, me: &Driver) -> Result<()> {
        self.driver_release(key_, me).await
    }
}
