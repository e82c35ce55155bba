//! Dataset leases and run drivers: conditional writes with expiry on the dataset's item
//! and on one `DRIVER#<key>` item.

use skein_core::catalog::{Catalog, Driver};
use skein_core::{Error, Result};

use super::client::DynamoCatalog;
use super::keys::*;

impl DynamoCatalog {
    pub(super) async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl_secs: u64,
    ) -> Result<()> {
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

    pub(super) async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
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

    pub(super) async fn lease_take_over(
        &self,
        name: &str,
        from: &str,
        to: &str,
        ttl_secs: u64,
    ) -> Result<()> {
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

    pub(super) async fn driver_claim(
        &self,
        key_: &str,
        me: &Driver,
        replace: Option<&Driver>,
    ) -> Result<()> {
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

    pub(super) async fn driver_get(&self, key_: &str) -> Result<Option<Driver>> {
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

    pub(super) async fn driver_release(&self, key_: &str, me: &Driver) -> Result<()> {
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
