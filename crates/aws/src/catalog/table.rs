//! The table's definition: keys, the sharded `ByKind` index and item expiry (tests and
//! local set-ups create it here; on AWS the template does).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use skein_core::Result;

use super::client::DynamoCatalog;
use super::keys::*;

impl DynamoCatalog {
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
}
