//! Delta Lake targets (`target.format: delta`): the target directory (or S3 prefix) is a
//! Delta table whose log is the commit point readers follow.
//!
//! skein keeps its own store inside the table, under `_skein/` (staging, versions with
//! their manifests, the intent, and the pointer to skein's current version), and writes
//! nothing else there: a staged version's Parquet files are in the table's directory but
//! in no commit, so no Delta reader sees them. Publishing version `N` is one Delta commit:
//! remove every file of the table's current snapshot, add the files of
//! `_skein/versions/v<N>/` (an overwrite), with skein's figures in the commit's
//! `commitInfo` under `skein` ([`CommitMeta`]: version, run, spec hash, source
//! fingerprint, content checksum, rows, manifest). The log's next entry is written with a
//! create-if-absent put (locally a `link(2)`, on S3 a conditional put), so of two writers
//! only one gets a given table version; no lock table is needed.
//!
//! Rolling back to version `M` is a commit restoring `M`'s file set (a `RESTORE` naming
//! the table version that published `M`): the files are the ones `M` was published with,
//! never rewritten, so readers get them byte for byte. Time travel to any table version
//! works with any Delta reader.
//!
//! The commit is idempotent: the newest commit carrying skein's figures says which skein
//! version the table holds, and a commit of the version the table already holds does
//! nothing. The publish and rollback protocols (`skein_usecases::publish`) call it
//! before they move skein's own pointer, so a crash between the two is finished by the
//! next attempt without a second commit.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::CommitBuilder;
use deltalake_core::kernel::{Action, Add, Metadata, Protocol, StructType};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};
use skein_core::manifest::{ContentChecksum, Manifest};
use url::Url;

use crate::error::{Error, Result};

/// The key of skein's figures in a commit's `commitInfo`.
pub const COMMIT_KEY: &str = "skein";

/// skein's store inside a Delta table (hidden from engines that list the directory).
pub const STATE_DIR: &str = "_skein";

/// Where skein's versions live inside the table (the data files' paths start with it).
pub const VERSIONS_DIR: &str = "_skein/versions";

/// Commits of the log read at most, newest first, to find the newest skein commit and the
/// table version that published a skein version.
const HISTORY_LIMIT: usize = 1000;

/// skein's figures in a commit's `commitInfo` (under [`COMMIT_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMeta {
    /// Dataset name.
    pub dataset: String,
    /// The skein version the commit made current.
    pub version: u64,
    /// The run that published it (a rollback keeps the version's own run).
    pub run_id: String,
    /// `publish` or `rollback`.
    pub action: String,
    /// The spec's hash.
    pub spec_hash: String,
    /// The source's fingerprint.
    pub source_fingerprint: String,
    /// Rows in the version.
    pub rows: u64,
    /// The content checksum skein verified.
    pub checksum: ContentChecksum,
    /// The version's manifest, relative to the table.
    pub manifest: String,
}

/// One commit of the table's log, newest first in [`DeltaLog::history`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaCommit {
    /// The table version the commit made.
    pub table_version: u64,
    /// Delta's operation name (`CREATE TABLE`, `WRITE`, `RESTORE`, …).
    pub operation: String,
    /// Milliseconds since the epoch, when the writer recorded it.
    pub timestamp: Option<i64>,
    /// skein's figures, when skein made the commit.
    pub skein: Option<CommitMeta>,
}

/// The Delta log of one target: a table at `url`, reached through `root` (an object store
/// whose `/` is the file system's or the bucket's root) under `prefix`.
#[derive(Clone)]
pub struct DeltaLog {
    dataset: String,
    url: Url,
    root: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl std::fmt::Debug for DeltaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaLog")
            .field("dataset", &self.dataset)
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl DeltaLog {
    /// The table in local directory `dir` (absolute).
    pub fn local(dataset: &str, dir: &std::path::Path) -> Result<DeltaLog> {
        let url = Url::from_directory_path(dir).map_err(|()| {
            Error::Internal(format!("{} is not an absolute directory", dir.display()))
        })?;
        let prefix = ObjectPath::from_absolute_path(dir)
            .map_err(|e| Error::Internal(format!("table path {}: {e}", dir.display())))?;
        Ok(DeltaLog {
            dataset: dataset.to_string(),
            url,
            root: Arc::new(object_store::local::LocalFileSystem::new()),
            prefix,
        })
    }

    /// The table at `s3://bucket/prefix/`, through the bucket's client `root`.
    pub fn s3(
        dataset: &str,
        root: Arc<dyn ObjectStore>,
        bucket: &str,
        prefix: &str,
    ) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        let url = Url::parse(&format!("s3://{bucket}/{prefix}"))
            .map_err(|e| Error::Internal(format!("table URL of s3://{bucket}/{prefix}: {e}")))?;
        Ok(DeltaLog {
            dataset: dataset.to_string(),
            url,
            root,
            prefix: ObjectPath::from(prefix),
        })
    }

    /// The table's location, as readers open it.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    fn fail(&self, op: &'static str) -> impl FnOnce(deltalake_core::DeltaTableError) -> Error {
        let (dataset, uri) = (self.dataset.clone(), self.url.to_string());
        move |e| Error::Storage {
            dataset,
            op,
            uri,
            message: e.to_string(),
        }
    }

    fn log_store(&self) -> LogStoreRef {
        let prefixed: Arc<dyn ObjectStore> =
            Arc::new(PrefixStore::new(self.root.clone(), self.prefix.clone()));
        default_logstore(
            prefixed,
            self.root.clone(),
            &self.url,
            &StorageConfig::default(),
        )
    }

    /// The table at its newest version, or `None` before the first commit.
    async fn load(&self) -> Result<Option<DeltaTable>> {
        let mut table = DeltaTable::new(self.log_store());
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(self.fail("read the Delta log of"))?;
        if !exists {
            return Ok(None);
        }
        table
            .load()
            .await
            .map_err(self.fail("read the Delta log of"))?;
        Ok(Some(table))
    }

    /// The table's commits, newest first (at most the last 1,000).
    pub async fn history(&self) -> Result<Vec<DeltaCommit>> {
        let Some(table) = self.load().await? else {
            return Ok(Vec::new());
        };
        history_of(&table)
            .await
            .map_err(self.fail("read the history of"))
    }

    /// The table's newest version (its last commit), or `None` before the first commit.
    pub async fn table_version(&self) -> Result<Option<u64>> {
        Ok(self.load().await?.and_then(|t| t.version()))
    }

    /// The skein version the table holds: that of the newest commit skein made.
    pub async fn current(&self) -> Result<Option<u64>> {
        Ok(self
            .history()
            .await?
            .into_iter()
            .find_map(|c| c.skein.map(|s| s.version)))
    }

    /// Makes skein version `manifest.version` the table's content, in one commit, unless
    /// the table holds it already. `from` is the skein version that was current when the
    /// publish or rollback was recorded: a table holding neither it nor the new version
    /// was changed by another publisher ([`Error::PublishConflict`]). `schema` is the
    /// Arrow schema of the version (its files' columns and the partition columns),
    /// `partition_by` the partition columns (`target.partitionBy`), whose values the
    /// files' `col=value/` directories give.
    pub async fn commit(
        &self,
        manifest: &Manifest,
        schema: &SchemaRef,
        partition_by: &[String],
        from: Option<u64>,
    ) -> Result<()> {
        let n = manifest.version;
        let table = self.load().await?;
        let history = match &table {
            Some(t) => history_of(t)
                .await
                .map_err(self.fail("read the history of"))?,
            None => Vec::new(),
        };
        let holds = history
            .iter()
            .find_map(|c| c.skein.as_ref().map(|s| s.version));
        if holds == Some(n) {
            return Ok(()); // committed by an earlier attempt
        }
        if holds.is_some() && holds != from {
            return Err(Error::PublishConflict {
                dataset: self.dataset.clone(),
                uri: self.url.to_string(),
            });
        }
        // A version the table held before is restored (a rollback); a new one is written.
        let published_at = history.iter().find(|c| {
            c.skein
                .as_ref()
                .is_some_and(|s| s.version == n && s.action == "publish")
        });
        let action = if published_at.is_some() {
            "rollback"
        } else {
            "publish"
        };
        let dir = format!("{VERSIONS_DIR}/v{n}");
        let meta = CommitMeta {
            dataset: manifest.dataset.clone(),
            version: n,
            run_id: manifest.run_id.clone(),
            action: action.to_string(),
            spec_hash: manifest.spec_hash.clone(),
            source_fingerprint: manifest.source_fingerprint.clone(),
            rows: manifest.rows,
            checksum: manifest.checksum.clone(),
            manifest: format!("{dir}/{}", crate::layout::MANIFEST),
        };
        let delta_schema: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| self.unsupported_schema(e.to_string()))?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions: Vec<Action> = Vec::new();
        let snapshot = table.as_ref().map(|t| t.snapshot()).transpose();
        let snapshot = snapshot.map_err(self.fail("read the Delta log of"))?;
        let ntz = has_timestamp_ntz(schema);
        let operation = match snapshot {
            None => {
                let protocol = protocol(ntz)?;
                let metadata = metadata(&delta_schema, partition_by, None, now)?;
                actions.push(Action::Protocol(protocol.clone()));
                actions.push(Action::Metadata(metadata.clone()));
                DeltaOperation::Create {
                    mode: SaveMode::ErrorIfExists,
                    location: self.url.clone(),
                    protocol,
                    metadata,
                }
            }
            Some(state) => {
                if state.schema().as_ref() != &delta_schema
                    || state.metadata().partition_columns() != partition_by
                {
                    if ntz && state.protocol().min_reader_version() < 3 {
                        actions.push(Action::Protocol(protocol(true)?));
                    }
                    let id = state.metadata().id().to_string();
                    actions.push(Action::Metadata(metadata(
                        &delta_schema,
                        partition_by,
                        Some(id),
                        now,
                    )?));
                }
                for file in state.log_data().iter() {
                    actions.push(Action::Remove(file.remove_action(true)));
                }
                match published_at {
                    Some(c) => DeltaOperation::Restore {
                        version: Some(c.table_version),
                        datetime: None,
                    },
                    None => DeltaOperation::Write {
                        mode: SaveMode::Overwrite,
                        partition_by: (!partition_by.is_empty()).then(|| partition_by.to_vec()),
                        predicate: None,
                    },
                }
            }
        };
        for f in &manifest.files {
            let values = crate::partition::values_of(&f.name);
            let partition_values = partition_by
                .iter()
                .map(|c| {
                    let v = values.iter().find(|(k, _)| k == c).map(|(_, v)| v.clone());
                    (c.clone(), v)
                })
                .collect();
            actions.push(Action::Add(Add {
                path: format!("{dir}/{}", f.name),
                partition_values,
                size: f.size as i64,
                modification_time: now,
                data_change: true,
                stats: Some(format!("{{\"numRecords\":{}}}", f.rows)),
                ..Default::default()
            }));
        }
        let meta = serde_json::to_value(&meta)
            .map_err(|e| Error::Internal(format!("commit figures to JSON: {e}")))?;
        let app_metadata = HashMap::from([(COMMIT_KEY.to_string(), meta)]);
        let reference = table
            .as_ref()
            .and_then(|t| t.snapshot().ok())
            .map(|s| s as &dyn deltalake_core::kernel::transaction::TableReference);
        let commit = CommitBuilder::default()
            .with_actions(actions)
            .with_app_metadata(app_metadata)
            .with_max_retries(0)
            .build(reference, self.log_store(), operation)
            .await;
        match commit {
            Ok(done) => {
                tracing::info!(
                    dataset = %self.dataset,
                    version = n,
                    table_version = done.version(),
                    "delta commit"
                );
                Ok(())
            }
            Err(e) => {
                // Another writer took the table version this commit was for: the table
                // changed under us, like a lost conditional put of `current.json`.
                if matches!(
                    e,
                    deltalake_core::DeltaTableError::VersionAlreadyExists(_)
                        | deltalake_core::DeltaTableError::Transaction { .. }
                ) {
                    return Err(Error::PublishConflict {
                        dataset: self.dataset.clone(),
                        uri: self.url.to_string(),
                    });
                }
                Err(self.fail("commit to the Delta log of")(e))
            }
        }
    }

    fn unsupported_schema(&self, message: String) -> Error {
        Error::Storage {
            dataset: self.dataset.clone(),
            op: "write a Delta schema for",
            uri: self.url.to_string(),
            message: format!(
                "{message}; cast the column to a type Delta Lake has in spec.transform.sql"
            ),
        }
    }
}

/// The Arrow schema of a Parquet file (read from its footer).
pub async fn parquet_schema(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
) -> std::result::Result<SchemaRef, String> {
    let reader = crate::footer::parquet_reader(store, &path, size).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| e.to_string())?;
    Ok(builder.schema().clone())
}

async fn history_of(
    table: &DeltaTable,
) -> std::result::Result<Vec<DeltaCommit>, deltalake_core::DeltaTableError> {
    let newest = table.version().unwrap_or(0);
    let infos: Vec<_> = table.history(Some(HISTORY_LIMIT)).try_collect().await?;
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, info)| DeltaCommit {
            table_version: newest.saturating_sub(i as u64),
            operation: info.operation.clone().unwrap_or_default(),
            timestamp: info.timestamp,
            skein: info
                .info
                .get(COMMIT_KEY)
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
        })
        .collect())
}

fn has_timestamp_ntz(schema: &SchemaRef) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None)))
}

/// Reader 1 / writer 2, or with the `timestampNtz` feature (reader 3 / writer 7) when a
/// column is a timestamp without a zone.
fn protocol(ntz: bool) -> Result<Protocol> {
    let value = if ntz {
        serde_json::json!({
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        })
    } else {
        serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 2})
    };
    serde_json::from_value(value).map_err(|e| Error::Internal(format!("delta protocol: {e}")))
}

/// The table's metadata for `schema` and its partition columns, keeping the table's `id`
/// when it has one.
fn metadata(
    schema: &StructType,
    partition_by: &[String],
    id: Option<String>,
    now: i64,
) -> Result<Metadata> {
    let schema_string = serde_json::to_string(schema)
        .map_err(|e| Error::Internal(format!("delta schema to JSON: {e}")))?;
    let value = serde_json::json!({
        "id": id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "name": None::<String>,
        "description": None::<String>,
        "format": { "provider": "parquet", "options": {} },
        "schemaString": schema_string,
        "partitionColumns": partition_by,
        "configuration": HashMap::<String, String>::new(),
        "createdTime": now,
    });
    serde_json::from_value(value).map_err(|e| Error::Internal(format!("delta metadata: {e}")))
}
