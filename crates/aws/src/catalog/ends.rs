//! How each dataset's migration ended in a run, and the run's count of each end: an item
//! `RUN#<run>` / `END#<dataset>` holding the latest end, and counters `end_<end>` on the
//! run's `META` item, changed together in one transaction conditional on the end read
//! before, so a dataset counts once, under its latest end, whoever writes at once.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use skein_core::catalog::{EndCounts, RunEnd};
use skein_core::{Error, Result};

use super::client::DynamoCatalog;
use super::keys::*;

/// Rounds of read-then-conditional-write before two writers racing on one dataset's end
/// give up (each round loses only to a write that changed the end meanwhile).
const ROUNDS: usize = 8;

fn counter(end: RunEnd) -> String {
    format!("end_{}", end.as_str())
}

impl DynamoCatalog {
    pub(super) async fn end_record(&self, run_id: &str, dataset: &str, end: RunEnd) -> Result<()> {
        let pk = format!("RUN#{run_id}");
        let sk = format!("END#{dataset}");
        for _ in 0..ROUNDS {
            let old = match self.get(pk.clone(), &sk).await? {
                Some(item) => Some(RunEnd::parse(get_s(&item, "ending").unwrap_or(""))?),
                None => None,
            };
            if old == Some(end) {
                return Ok(());
            }
            let mut item = key(pk.clone(), &sk);
            item.insert("ending".into(), s(end.as_str()));
            item.insert("at".into(), s(now()));
            let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
            put = match old {
                None => put.condition_expression("attribute_not_exists(PK)"),
                Some(o) => put
                    .condition_expression("ending = :old")
                    .expression_attribute_values(":old", s(o.as_str())),
            };
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), "META")))
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_names("#new", counter(end))
                .expression_attribute_values(":one", n(1));
            update = match old {
                None => update.update_expression("ADD #new :one"),
                Some(o) => update
                    .update_expression("ADD #new :one, #old :minus")
                    .expression_attribute_names("#old", counter(o))
                    .expression_attribute_values(":minus", n(-1)),
            };
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .put(put.build().map_err(backend)?)
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .update(update.build().map_err(backend)?)
                        .build(),
                )
                .send()
                .await;
            if self.written("TransactWriteItems", result)?.is_some() {
                return Ok(());
            }
            if self.get(pk.clone(), "META").await?.is_none() {
                return Err(Error::Internal(format!(
                    "run `{run_id}` is not in the catalog"
                )));
            }
        }
        Err(Error::Backend {
            message: format!(
                "dynamodb: the end of dataset `{dataset}` in run `{run_id}` changed under {ROUNDS} writes in a row"
            ),
        })
    }

    pub(super) async fn end_counts_of(&self, run_id: &str) -> Result<EndCounts> {
        let mut counts = EndCounts::default();
        if let Some(item) = self.get(format!("RUN#{run_id}"), "META").await? {
            for end in RunEnd::ALL {
                *counts.of(end) = get_n(&item, &counter(end)).unwrap_or(0).max(0) as u64;
            }
        }
        Ok(counts)
    }
}
