//! Source-system reader slots: a semaphore item per system and a holder item per reader,
//! each a conditional write; a holder's slot expires so a crashed reader frees it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use skein_core::Result;
use skein_core::slots::ReaderSlots;

use super::client::DynamoCatalog;
use super::keys::*;

impl DynamoCatalog {
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
            .transact_items(self.put_item(holder_item, Some("attribute_not_exists(PK)"))?)
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

/// The reader-slot port: a system's cap is its `SEM#<system>` item's (`put_system_caps`,
/// written by Plan from the fleet); a system without one is not capped.
#[async_trait]
impl ReaderSlots for DynamoCatalog {
    async fn acquire(&self, system: &str, holder: &str, ttl_secs: u64) -> Result<bool> {
        match self.system_cap(system).await? {
            Some(cap) => self.acquire_slot(system, holder, cap, ttl_secs).await,
            None => Ok(true),
        }
    }

    async fn release(&self, system: &str, holder: &str) -> Result<()> {
        self.release_slot(system, holder).await
    }
}
