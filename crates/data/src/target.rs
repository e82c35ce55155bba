//! A dataset's target wherever it lives: the local [`TargetStore`] (directories and a
//! symlink) or the [`S3TargetStore`] (objects and a conditional `current.json`). The use
//! cases work on [`Target`] and behave the same on both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skein_core::load::SpecFile;
use skein_core::manifest::Manifest;

use crate::delta::DeltaLog;
use crate::error::{Error, Result};
use crate::intent::Intent;
use crate::layout::{DataDir, MANIFEST, PLAN};
use crate::location::Location;
use crate::s3_store::S3TargetStore;
use crate::session::Settings;
use crate::store::TargetStore;

/// A dataset's target store, local or on S3.
#[derive(Debug, Clone)]
pub enum Target {
    Local(TargetStore),
    S3(S3TargetStore),
}

/// Where staging writes its Parquet files before they are in the target's staging area.
pub(crate) struct StagingOutput {
    /// The directory the writers create files in.
    pub dir: PathBuf,
    /// True when each finished file must be handed to [`Target::store_staged_file`].
    pub upload: bool,
    /// Keeps a temporary directory alive while staging runs.
    _tmp: Option<tempfile::TempDir>,
}

impl Target {
    /// The target of a spec: `s3://bucket/prefix/` or a local path.
    pub fn open(settings: &Settings, file: &SpecFile) -> Result<Target> {
        let location = Location::resolve(&file.spec.spec.target.uri, file.base_dir());
        match location.s3() {
            Some((bucket, prefix)) => {
                let store = S3TargetStore::open(&settings.s3, file.name(), bucket, prefix)?
                    .with_glue(file.spec.spec.target.glue.clone());
                Ok(Target::S3(if file.spec.spec.target.is_delta() {
                    store.with_delta()?
                } else {
                    store
                }))
            }
            None => Ok(Target::Local(TargetStore::open(file)?)),
        }
    }

    /// The same target, fenced to one attempt of a run: staging reads and writes only
    /// `staging/<run>/a<attempt>/`, and publish takes only that attempt's staged files.
    /// Without it, the run's whole staging area (what rollback and gc discard).
    pub fn with_attempt(self, attempt: u32) -> Target {
        match self {
            Target::Local(t) => Target::Local(t.with_attempt(attempt)),
            Target::S3(t) => Target::S3(t.with_attempt(attempt)),
        }
    }

    /// Where readers find the dataset: the local path, or the `s3://` prefix whose
    /// `_skein/current.json` names the current version.
    pub fn uri(&self) -> String {
        match self {
            Target::Local(t) => t.path().display().to_string(),
            Target::S3(t) => t.uri(),
        }
    }

    /// A run's staged files.
    pub async fn staging_data(&self, run_id: &str) -> Result<DataDir> {
        match self {
            Target::Local(t) => Ok(DataDir::Local(t.staging_dir(run_id))),
            Target::S3(t) => t.staging_data(run_id).await,
        }
    }

    /// The version an attempt stages straight into (an S3 plain Parquet target's attempt,
    /// once it claimed one): publish makes that very number current, copying nothing.
    pub async fn staged_version(&self, run_id: &str) -> Result<Option<u64>> {
        match self {
            Target::Local(_) => Ok(None),
            Target::S3(t) => t.staged_version(run_id).await,
        }
    }

    /// Version `n`'s files (on S3 wherever its layout put them).
    pub async fn version_data(&self, n: u64) -> Result<DataDir> {
        match self {
            Target::Local(t) => Ok(DataDir::Local(t.version_dir(n))),
            Target::S3(t) => t.version_data(n).await,
        }
    }

    /// The staged manifest of a run, if the run finished staging.
    pub async fn staged(&self, run_id: &str) -> Result<Option<Manifest>> {
        match self {
            Target::Local(t) => t.staged(run_id),
            Target::S3(t) => t.staged(run_id).await,
        }
    }

    /// Writes the staged manifest of a run (the last step of staging).
    pub async fn write_staged(&self, run_id: &str, manifest: &Manifest) -> Result<()> {
        match self {
            Target::Local(t) => t.write_staged(run_id, manifest),
            Target::S3(t) => t.write_staged(run_id, manifest).await,
        }
    }

    /// Whether a run left anything in staging: a staged version, or a chunk plan with
    /// chunks staged under it.
    pub async fn has_staging(&self, run_id: &str) -> Result<bool> {
        Ok(self.staged(run_id).await?.is_some()
            || self
                .staging_json::<serde_json::Value>(run_id, PLAN)
                .await?
                .is_some())
    }

    /// The runs that left anything in staging, finished or not.
    pub async fn staging_runs(&self) -> Result<Vec<String>> {
        match self {
            Target::Local(t) => t.staging_runs(),
            Target::S3(t) => t.staging_runs().await,
        }
    }

    /// Brings the files `names` of published version `n` into a run's staging, for an
    /// incremental version made of them and new files: hard links locally, server-side
    /// copies on S3 (see each store's `adopt`).
    pub async fn adopt(&self, run_id: &str, n: u64, names: &[String]) -> Result<()> {
        match self {
            Target::Local(t) => t.adopt(run_id, n, names),
            Target::S3(t) => t.adopt(run_id, n, names).await,
        }
    }

    /// Removes a run's staged files.
    pub async fn discard(&self, run_id: &str) -> Result<()> {
        match self {
            Target::Local(t) => t.discard(run_id),
            Target::S3(t) => t.discard(run_id).await,
        }
    }

    /// The manifest of the published version, if any.
    pub async fn current(&self) -> Result<Option<Manifest>> {
        match self {
            Target::Local(t) => t.current(),
            Target::S3(t) => t.current().await,
        }
    }

    /// Manifests of every version, oldest first.
    pub async fn versions(&self) -> Result<Vec<Manifest>> {
        match self {
            Target::Local(t) => t.versions(),
            Target::S3(t) => t.versions().await,
        }
    }

    /// Publishes a run's staged version: it becomes version N+1 and current, atomically.
    pub async fn publish(&self, run_id: &str) -> Result<Manifest> {
        if self.delta().is_some() {
            let from = self.current().await?.map(|m| m.version);
            let manifest = self.move_staged(run_id, self.next_version().await?).await?;
            self.point_to(manifest.version, from).await?;
            return Ok(manifest);
        }
        match self {
            Target::Local(t) => t.publish(run_id),
            Target::S3(t) => t.publish(run_id).await,
        }
    }

    /// Makes an existing version current again.
    pub async fn point_at(&self, version: u64) -> Result<()> {
        if self.delta().is_some() {
            let from = self.current().await?.map(|m| m.version);
            return self.point_to(version, from).await;
        }
        match self {
            Target::Local(t) => t.point_at(version),
            Target::S3(t) => t.point_at(version).await,
        }
    }

    /// Points the dataset back at the version before the current one. Returns the
    /// manifests (rolled back from, restored).
    pub async fn rollback(&self) -> Result<(Manifest, Manifest)> {
        if self.delta().is_some() {
            let (current, previous) = self.rollback_plan().await?;
            self.point_to(previous.version, Some(current.version))
                .await?;
            return Ok((current, previous));
        }
        match self {
            Target::Local(t) => t.rollback(),
            Target::S3(t) => t.rollback().await,
        }
    }

    /// The Delta table version readers see (a Delta target's newest commit), or `None`
    /// (another format, or no commit yet).
    pub async fn table_version(&self) -> Result<Option<u64>> {
        match self.delta() {
            Some(log) => log.table_version().await,
            None => Ok(None),
        }
    }

    /// The Delta log of a Delta Lake target (`format: delta`).
    pub fn delta(&self) -> Option<&DeltaLog> {
        match self {
            Target::Local(t) => t.delta.as_ref().map(|(_, log)| log),
            Target::S3(t) => t.delta.as_ref(),
        }
    }

    /// A Delta target: makes version `n` the table's content in one commit, unless the
    /// table holds it already (see [`crate::delta`]).
    async fn commit_delta(&self, n: u64, from: Option<u64>) -> Result<()> {
        let Some(log) = self.delta() else {
            return Ok(());
        };
        let manifest = self.version_manifest(n).await?.ok_or_else(|| {
            Error::Internal(format!(
                "v{n} of a Delta target has no manifest to commit; it is a bug to commit a version before its files"
            ))
        })?;
        let (schema, partition_by) = self.version_schema(n, &manifest).await?;
        log.commit(&manifest, &schema, &partition_by, from).await?;
        // A crash here leaves the table at `n` and skein's pointer behind it: the next
        // attempt's commit finds `n` committed and only moves the pointer.
        skein_core::crash::point("delta.committed", &manifest.dataset);
        Ok(())
    }

    /// The Arrow schema of version `n` (its first file's footer, and the partition columns
    /// the manifest lists beside them, typed as it says) and its partition columns.
    async fn version_schema(
        &self,
        n: u64,
        manifest: &Manifest,
    ) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<String>)> {
        let first = manifest.files.first().ok_or_else(|| {
            Error::Internal(format!(
                "v{n} of dataset `{}` lists no file",
                manifest.dataset
            ))
        })?;
        let (store, path) = match self {
            Target::Local(t) => {
                let path = t.version_dir(n).join(&first.name);
                let key = object_store::path::Path::from_absolute_path(&path)
                    .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
                let store: Arc<dyn object_store::ObjectStore> =
                    Arc::new(object_store::local::LocalFileSystem::new());
                (store, key)
            }
            Target::S3(t) => (
                t.object_store(),
                object_store::path::Path::from(format!(
                    "{}/{}",
                    t.version_key(n).await?,
                    first.name
                )),
            ),
        };
        let uri = format!("{}{}", self.version_data(n).await?.url(), first.name);
        let files = crate::delta::parquet_schema(store, path, first.size)
            .await
            .map_err(|message| Error::Storage {
                dataset: manifest.dataset.clone(),
                op: "read the schema of",
                uri,
                message,
            })?;
        // The partition columns are in the first file's directories (`col=value/`).
        let partition_by: Vec<String> = crate::partition::values_of(&first.name)
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| files.field_with_name(c).is_err())
            .collect();
        if partition_by.is_empty() {
            return Ok((files, partition_by));
        }
        let mut fields = Vec::new();
        for line in &manifest.schema {
            let (name, kind) = line.split_once(": ").ok_or_else(|| {
                Error::Internal(format!("v{n}: schema entry `{line}` is not `name: type`"))
            })?;
            match files.field_with_name(name) {
                Ok(f) => fields.push(f.clone()),
                Err(_) => {
                    let t: datafusion::arrow::datatypes::DataType = kind.parse().map_err(|e| {
                        Error::Internal(format!("v{n}: type `{kind}` of `{name}`: {e}"))
                    })?;
                    fields.push(datafusion::arrow::datatypes::Field::new(name, t, true));
                }
            }
        }
        Ok((
            Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            partition_by,
        ))
    }

    /// An S3 target with `target.glue`: creates or updates its Glue table for version `n`,
    /// now current (see [`crate::glue`]).
    async fn register_glue(&self, n: u64) -> Result<()> {
        let Target::S3(t) = self else {
            return Ok(());
        };
        let Some(glue) = &t.glue else {
            return Ok(());
        };
        let manifest = self.version_manifest(n).await?.ok_or_else(|| {
            Error::Internal(format!(
                "v{n} has no manifest to register in Glue; it is a bug to register a version before its files"
            ))
        })?;
        let (schema, _) = self.version_schema(n, &manifest).await?;
        let delta = t.delta.is_some();
        let location = if delta {
            t.uri()
        } else {
            t.version_data(n).await?.url()
        };
        crate::glue::register(
            t.settings(),
            &crate::glue::Registration {
                dataset: &manifest.dataset,
                glue,
                delta,
                location,
                version: n,
                schema,
                files: manifest.files.iter().map(|f| f.name.clone()).collect(),
            },
        )
        .await
    }

    /// The current version and the one a rollback restores (the newest before it), or
    /// [`Error::NothingToRollBack`].
    pub async fn rollback_plan(&self) -> Result<(Manifest, Manifest)> {
        match self {
            Target::Local(t) => t.rollback_plan(),
            Target::S3(t) => t.rollback_plan().await,
        }
    }

    /// The intent of a publish or rollback under way, if one was recorded.
    pub async fn intent(&self) -> Result<Option<Intent>> {
        match self {
            Target::Local(t) => t.intent(),
            Target::S3(t) => t.intent().await,
        }
    }

    /// Records an intent durably, before the first side effect of its protocol.
    pub async fn record_intent(&self, intent: &Intent) -> Result<()> {
        match self {
            Target::Local(t) => t.record_intent(intent),
            Target::S3(t) => t.record_intent(intent).await,
        }
    }

    /// Removes the intent: the last step of a protocol.
    pub async fn clear_intent(&self) -> Result<()> {
        match self {
            Target::Local(t) => t.clear_intent(),
            Target::S3(t) => t.clear_intent().await,
        }
    }

    /// The number a new version gets.
    pub async fn next_version(&self) -> Result<u64> {
        match self {
            Target::Local(t) => t.next_version(),
            Target::S3(t) => t.next_version().await,
        }
    }

    /// Reserves version number `n` (or the first free one above it) for `run_id` and
    /// returns it. Locally the rename into `versions/v<n>` is the reservation: `n`.
    pub async fn claim(&self, run_id: &str, n: u64) -> Result<u64> {
        match self {
            Target::Local(_) => Ok(n),
            Target::S3(t) => t.claim(run_id, n).await,
        }
    }

    /// Where version `n`'s manifest is: `_manifest.json` next to its data (a local path or
    /// an `s3://` URI). The catalog records it with the version's summary.
    pub async fn manifest_location(&self, n: u64) -> Result<String> {
        Ok(format!("{}{}", self.version_data(n).await?.url(), MANIFEST))
    }

    /// The manifest of version `n`, if the version is complete.
    pub async fn version_manifest(&self, n: u64) -> Result<Option<Manifest>> {
        match self {
            Target::Local(t) => t.version_manifest(n),
            Target::S3(t) => t.manifest(n).await,
        }
    }

    /// Moves (locally) or copies (S3) a run's staged files into version `n`, manifest
    /// last; idempotent. An attempt staged in `v<n>` itself (S3, plain Parquet) only gets
    /// its manifest: nothing is copied.
    pub async fn move_staged(&self, run_id: &str, n: u64) -> Result<Manifest> {
        match self {
            Target::Local(t) => t.move_staged(run_id, n),
            Target::S3(t) => t.move_staged(run_id, n).await,
        }
    }

    /// Makes version `n` current, unless another publisher changed the current version
    /// since it was `from` (S3's conditional put; locally the dataset's lease is the only
    /// guard). Idempotent.
    pub async fn point_to(&self, n: u64, from: Option<u64>) -> Result<()> {
        self.commit_delta(n, from).await?;
        match self {
            Target::Local(t) => {
                if t.current_version()? == Some(n) {
                    return Ok(());
                }
                t.point_at(n)
            }
            Target::S3(t) => {
                t.point_to(n, from).await?;
                self.register_glue(n).await
            }
        }
    }

    /// Removes an unpublished version that lost a race (S3; its claim stays).
    pub async fn abandon(&self, n: u64) -> Result<()> {
        match self {
            Target::Local(_) => Ok(()),
            Target::S3(t) => t.abandon(n).await,
        }
    }

    /// A published version made from the same spec and source, if one exists.
    pub async fn find_version(
        &self,
        spec_hash: &str,
        fingerprint: &str,
    ) -> Result<Option<Manifest>> {
        Ok(self
            .versions()
            .await?
            .into_iter()
            .rev()
            .find(|m| m.spec_hash == spec_hash && m.source_fingerprint == fingerprint))
    }

    /// Keeps a report next to the versions (`reports/<name>`), best effort.
    pub async fn save_report(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Target::Local(t) => {
                let path = t.root().join("reports").join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                }
                std::fs::write(&path, bytes).map_err(Error::io("write", &path))
            }
            Target::S3(t) => t.save_report(name, bytes).await,
        }
    }

    /// A JSON document under a run's staging area (`rel` may hold `/`), if present.
    pub(crate) async fn staging_json<T: serde::de::DeserializeOwned>(
        &self,
        run_id: &str,
        rel: &str,
    ) -> Result<Option<T>> {
        match self {
            Target::Local(t) => {
                let path = t.staging_dir(run_id).join(rel);
                match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                        Error::Internal(format!("{} is not valid: {e}", path.display()))
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::Io {
                        op: "read",
                        path,
                        source: e,
                    }),
                }
            }
            Target::S3(t) => t.staging_json(run_id, rel).await,
        }
    }

    /// Writes a JSON document under a run's staging area, durably (temp file and rename
    /// locally, one put on S3).
    pub(crate) async fn put_staging_json<T: serde::Serialize>(
        &self,
        run_id: &str,
        rel: &str,
        value: &T,
    ) -> Result<()> {
        match self {
            Target::Local(t) => {
                use std::io::Write;
                let path = t.staging_dir(run_id).join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                }
                let json = serde_json::to_vec_pretty(value)
                    .map_err(|e| Error::Internal(format!("{rel} to JSON: {e}")))?;
                let tmp = path.with_extension("json.tmp");
                let mut f = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
                f.write_all(&json).map_err(Error::io("write", &tmp))?;
                f.sync_all().map_err(Error::io("sync", &tmp))?;
                std::fs::rename(&tmp, &path).map_err(Error::io("rename into place", &path))
            }
            Target::S3(t) => t.put_staging_json(run_id, rel, value).await,
        }
    }

    /// Removes a run's staged files whose name starts with `prefix` (a failed chunk's
    /// partial output), leaving the rest of the staging area alone.
    pub(crate) async fn discard_prefix(&self, run_id: &str, prefix: &str) -> Result<()> {
        match self {
            Target::Local(t) => {
                let dir = t.staging_dir(run_id);
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => {
                        return Err(Error::Io {
                            op: "list",
                            path: dir,
                            source: e,
                        });
                    }
                };
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().starts_with(prefix) {
                        let path = entry.path();
                        std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                    }
                }
                Ok(())
            }
            Target::S3(t) => t.discard_prefix(run_id, prefix).await,
        }
    }

    /// Where staging writes: the staging directory itself (local), or a temporary
    /// directory whose files are uploaded one by one (S3).
    pub(crate) fn staging_output(
        &self,
        settings: &Settings,
        run_id: &str,
    ) -> Result<StagingOutput> {
        match self {
            Target::Local(t) => {
                let dir = t.staging_dir(run_id);
                std::fs::create_dir_all(&dir)
                    .map_err(Error::io("create staging directory", &dir))?;
                Ok(StagingOutput {
                    dir,
                    upload: false,
                    _tmp: None,
                })
            }
            Target::S3(_) => {
                let base = settings
                    .spill_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir);
                std::fs::create_dir_all(&base).map_err(Error::io("create", &base))?;
                let tmp = tempfile::Builder::new()
                    .prefix("skein-stage-")
                    .tempdir_in(&base)
                    .map_err(Error::io("create a temporary directory in", &base))?;
                Ok(StagingOutput {
                    dir: tmp.path().to_path_buf(),
                    upload: true,
                    _tmp: Some(tmp),
                })
            }
        }
    }

    /// Moves a finished staged file into the target's staging area (S3: upload, then
    /// delete the local file; local: already there).
    pub(crate) async fn store_staged_file(
        &self,
        run_id: &str,
        name: &str,
        local: &Path,
    ) -> Result<()> {
        match self {
            Target::Local(_) => Ok(()),
            Target::S3(t) => t.upload_staged_file(run_id, name, local).await,
        }
    }
}
