//! The Glue Data Catalog (`target.glue: {database, table}`): after a publish or rollback
//! has made a version current, its table is created or updated so that Athena (and any
//! engine on the Glue catalog) reads exactly that version.
//!
//! - A Delta target is a table of `table_type=DELTA` over the table's location; the log
//!   says which files are current, so the table changes only when the schema does.
//! - A Parquet target is a table whose location is the current version's prefix, moved
//!   on every publish and rollback. A partitioned one (`target.partitionBy`) has the
//!   partition columns as the table's `PartitionKeys`, and its partitions (each
//!   `col=value/…` directory of the version) are registered anew on every publish and
//!   rollback: the old ones deleted, the version's created, so Athena reads exactly the
//!   current version's partitions without `MSCK REPAIR TABLE`.
//!
//! The registration is an upsert (the database is created when missing): the publish and
//! rollback protocols run it after their swap and again when they resume, so a crash
//! between the swap and the registration is finished by the next attempt.

use std::collections::HashMap;

use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, PartitionValueList, SerDeInfo, StorageDescriptor,
    TableInput,
};
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
    /// The version's data files, relative to `location` (`col=value/part-….parquet` when
    /// partitioned): a plain Parquet table's partitions are read from them.
    pub files: Vec<String>,
}

/// Glue's limits per request
/// (<https://docs.aws.amazon.com/glue/latest/webapi/API_BatchCreatePartition.html>: 100
/// partitions; <https://docs.aws.amazon.com/glue/latest/webapi/API_BatchDeletePartition.html>:
/// 25).
const CREATE_BATCH: usize = 100;
const DELETE_BATCH: usize = 25;

/// The partition columns and each partition's values, in order, read from the files'
/// `col=value/` directories (none for an unpartitioned version).
fn partitions(files: &[String]) -> (Vec<String>, Vec<Vec<String>>) {
    let split = |f: &str| -> Vec<(String, String)> {
        let mut dirs: Vec<&str> = f.split('/').collect();
        dirs.pop(); // the file's own name
        dirs.iter()
            .filter_map(|d| d.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let keys: Vec<String> = files
        .first()
        .map(|f| split(f).into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    let mut values: Vec<Vec<String>> = files
        .iter()
        .map(|f| split(f).into_iter().map(|(_, v)| v).collect())
        .filter(|v: &Vec<String>| !v.is_empty())
        .collect();
    values.sort();
    values.dedup();
    (keys, values)
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
    if !r.delta {
        sync_partitions(&client, r)
            .await
            .map_err(fail("register the partitions of"))?;
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

/// Replaces the table's partitions with the version's: every registered partition is
/// deleted, then each of the version's is created under the version's prefix. A crash in
/// between is finished by the registration run again (publish and rollback resume it).
async fn sync_partitions(
    client: &aws_sdk_glue::Client,
    r: &Registration<'_>,
) -> std::result::Result<(), String> {
    let (keys, values) = partitions(&r.files);
    let mut old: Vec<Vec<String>> = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_partitions()
            .database_name(&r.glue.database)
            .table_name(&r.glue.table)
            .set_next_token(token)
            .send()
            .await
            .map_err(explain)?;
        old.extend(page.partitions().iter().map(|p| p.values().to_vec()));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for chunk in old.chunks(DELETE_BATCH) {
        let list: Vec<PartitionValueList> = chunk
            .iter()
            .map(|v| {
                PartitionValueList::builder()
                    .set_values(Some(v.clone()))
                    .build()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| e.to_string())?;
        client
            .batch_delete_partition()
            .database_name(&r.glue.database)
            .table_name(&r.glue.table)
            .set_partitions_to_delete(Some(list))
            .send()
            .await
            .map_err(explain)?;
    }
    if keys.is_empty() {
        return Ok(());
    }
    let base = r.location.trim_end_matches('/');
    for chunk in values.chunks(CREATE_BATCH) {
        let inputs: Vec<PartitionInput> = chunk
            .iter()
            .map(|v| {
                let dir: Vec<String> = keys
                    .iter()
                    .zip(v)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                PartitionInput::builder()
                    .set_values(Some(v.clone()))
                    .storage_descriptor(
                        parquet_storage(StorageDescriptor::builder())
                            .location(format!("{base}/{}/", dir.join("/")))
                            .build(),
                    )
                    .build()
            })
            .collect();
        let out = client
            .batch_create_partition()
            .database_name(&r.glue.database)
            .table_name(&r.glue.table)
            .set_partition_input_list(Some(inputs))
            .send()
            .await
            .map_err(explain)?;
        if let Some(e) = out.errors().first() {
            return Err(format!(
                "partition {:?}: {}",
                e.partition_values(),
                e.error_detail()
                    .and_then(|d| d.error_message())
                    .unwrap_or("refused")
            ));
        }
    }
    Ok(())
}

/// A Parquet table's (or partition's) formats: Hive's Parquet input, output and SerDe.
fn parquet_storage(
    storage: aws_sdk_glue::types::builders::StorageDescriptorBuilder,
) -> aws_sdk_glue::types::builders::StorageDescriptorBuilder {
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
    // A plain Parquet table's partition columns are its PartitionKeys, not columns of its
    // files (a Delta table's are in its log).
    let keys = if r.delta {
        Vec::new()
    } else {
        partitions(&r.files).0
    };
    let mut columns = Vec::new();
    let mut partition_keys = Vec::new();
    for f in r.schema.fields() {
        let kind = glue_type(f.data_type()).ok_or_else(|| {
            format!(
                "column `{}` is of type {}, which Glue has no type for; cast it in spec.transform.sql",
                f.name(),
                f.data_type()
            )
        })?;
        let column = Column::builder()
            .name(f.name().to_lowercase())
            .r#type(kind)
            .build()
            .map_err(|e| e.to_string())?;
        if keys.iter().any(|k| k == f.name()) {
            partition_keys.push(column);
        } else {
            columns.push(column);
        }
    }
    // In partitionBy's order, as the directories nest.
    partition_keys.sort_by_key(|c| keys.iter().position(|k| k.eq_ignore_ascii_case(c.name())));
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
        parquet_storage(storage)
    };
    TableInput::builder()
        .name(&r.glue.table)
        .table_type("EXTERNAL_TABLE")
        .set_partition_keys((!partition_keys.is_empty()).then_some(partition_keys))
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
