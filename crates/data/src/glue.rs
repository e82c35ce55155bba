//! The Glue Data Catalog (`target.glue: {database, table}`): after a publish or rollback
//! has made a version current, its table is created or updated so that Athena (and any
//! engine on the Glue catalog) reads exactly that version.
//!
//! - A Delta target is a table of `table_type=DELTA` over the table's location; the log
//!   says which files are current, so the table changes only when the schema does.
//! - A Parquet target is a table whose location is the current version's prefix, moved
//!   on every publish and rollback.
//!
//! The registration is an upsert (the database is created when missing): the publish and
//! rollback protocols run it after their swap and again when they resume, so a crash
//! between the swap and the registration is finished by the next attempt.

use std::collections::HashMap;

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use skein_core::spec::GlueTable;

use crate::error::{Error, Result};
use crate::s3::S3Settings;

/// What a registration names: the table, where it reads, and the version it holds.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// The dataset.
    pub dataset: &'a str,
    /// The Glue database and table.
    pub glue: &'a GlueTable,
    /// True for a Delta table.
    pub delta: bool,
    /// `s3://…/`: the Delta table, or the current Parquet version's prefix.
    pub location: String,
    /// skein's version made current.
    pub version: u64,
    /// The version's Arrow schema.
    pub schema: SchemaRef,
}

/// A Glue client from the same settings as S3 (endpoint, region, credentials).
async fn client(s3: &S3Settings) -> aws_sdk_glue::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &s3.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader = loader.region(aws_config::Region::new(
        s3.region
            .clone()
            .unwrap_or_else(|| crate::s3::DEFAULT_REGION.to_string()),
    ));
    if let Some(c) = &s3.credentials {
        loader = loader.credentials_provider(aws_sdk_glue::config::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "skein",
        ));
    }
    aws_sdk_glue::Client::new(&loader.load().await)
}

/// Creates or updates the Glue table of `r`.
pub async fn register(s3: &S3Settings, r: &Registration<'_>) -> Result<()> {
    let client = client(s3).await;
    let fail = |op: &'static str| {
        let dataset = r.dataset.to_string();
        let uri = format!("glue table {}.{}", r.glue.database, r.glue.table);
        move |message: String| Error::Storage {
            dataset,
            op,
            uri,
            message,
        }
    };
    let db = client.get_database().name(&r.glue.database).send().await;
    if let Err(e) = db {
        if !e
            .as_service_error()
            .is_some_and(|s| s.is_entity_not_found_exception())
        {
            return Err(fail("read the database of")(explain(e)));
        }
        let input = DatabaseInput::builder()
            .name(&r.glue.database)
            .description("created by skein for target.glue")
            .build()
            .map_err(|e| fail("create the database of")(e.to_string()))?;
        client
            .create_database()
            .database_input(input)
            .send()
            .await
            .map_err(|e| fail("create the database of")(explain(e)))?;
    }
    let input = table_input(r).map_err(fail("describe"))?;
    let exists = match client
        .get_table()
        .database_name(&r.glue.database)
        .name(&r.glue.table)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(fail("read")(explain(e))),
    };
    if exists {
        client
            .update_table()
            .database_name(&r.glue.database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| fail("update")(explain(e)))?;
    } else {
        client
            .create_table()
            .database_name(&r.glue.database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| fail("create")(explain(e)))?;
    }
    tracing::info!(
        dataset = r.dataset,
        database = %r.glue.database,
        table = %r.glue.table,
        version = r.version,
        "glue table registered"
    );
    Ok(())
}

fn explain<E: std::error::Error>(e: E) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

fn table_input(r: &Registration<'_>) -> std::result::Result<TableInput, String> {
    let mut columns = Vec::new();
    for f in r.schema.fields() {
        let kind = glue_type(f.data_type()).ok_or_else(|| {
            format!(
                "column `{}` is of type {}, which Glue has no type for; cast it in spec.transform.sql",
                f.name(),
                f.data_type()
            )
        })?;
        columns.push(
            Column::builder()
                .name(f.name().to_lowercase())
                .r#type(kind)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let mut parameters = HashMap::from([
        ("skein.dataset".to_string(), r.dataset.to_string()),
        ("skein.version".to_string(), r.version.to_string()),
        ("EXTERNAL".to_string(), "TRUE".to_string()),
    ]);
    let storage = StorageDescriptor::builder()
        .location(&r.location)
        .set_columns(Some(columns));
    let storage = if r.delta {
        parameters.insert("table_type".into(), "DELTA".into());
        parameters.insert("spark.sql.sources.provider".into(), "delta".into());
        storage
    } else {
        parameters.insert("classification".into(), "parquet".into());
        storage
            .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
            .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(
                        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    )
                    .build(),
            )
    };
    TableInput::builder()
        .name(&r.glue.table)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .storage_descriptor(storage.build())
        .build()
        .map_err(|e| e.to_string())
}

/// The Hive type Glue and Athena use for an Arrow type, if there is one.
fn glue_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        _ => return None,
    })
}
