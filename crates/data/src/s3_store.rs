//! The target store on S3: staging, versions, and a publish whose commit point is one
//! conditional put.
//!
//! Layout under a target `s3://bucket/lake/orders/`:
//! ```text
//! lake/orders/_skein/current.json                          the commit point: names the current version
//! lake/orders/_skein/intent.json                           a publish or rollback under way
//! lake/orders/_skein/staging/<run>/a<N>/_version.json     the version attempt N stages into
//! lake/orders/_skein/staging/<run>/…                       a chunked run's chunks and plan
//! lake/orders/versions/v<V>/_claim.json                    who took number V (created first)
//! lake/orders/versions/v<V>/part-*.parquet                 the files, staged right here
//! lake/orders/versions/v<V>/_staged.json                   written last by staging
//! lake/orders/versions/v<V>/_manifest.json                 written by publish: V is a version
//! lake/orders/_skein/versions/v<N>/…                       a version published in the old layout (still read)
//! ```
//! **Why `versions/`, not `_skein/versions/`.** Athena, Glue crawlers, Hive, Spark and
//! Trino treat a path whose segment starts with `_` or `.` as hidden, and Athena's
//! documentation says not to use underscores in a table's `LOCATION`
//! (<https://docs.aws.amazon.com/athena/latest/ug/tables-location-format.html>). So a
//! plain Parquet version lives at a public prefix, `versions/v<N>/`, which a table (the
//! Glue table of `target.glue`) can name as its location; inside it skein's own objects
//! (`_claim.json`, `_manifest.json`) start with `_`, so those engines skip them. skein's
//! state (pointer, intent, staging) stays under `_skein/`, hidden. The target prefix
//! itself holds every version: a table must name one version's prefix, never the target.
//! **Old layout.** Versions published before this layout are under
//! `_skein/versions/v<N>/`; they are still listed, read, pointed at and rolled back to
//! where they are (a version's directory is found by its claim or manifest there), and
//! new numbers are above every number of either layout. A Delta target keeps every
//! version under `_skein/versions/` (see [`crate::delta`]): its readers follow the log,
//! which names the files, and never list the directory.
//!
//! **Staging claims its version first.** An attempt of a plain Parquet target (issue 17)
//! claims the next version number with a create-if-absent put of `_claim.json` (naming
//! the run and the attempt) before it writes anything, records it in its
//! `_version.json`, and writes its files straight into `versions/v<V>/`. A version
//! directory without `_manifest.json` is no version: readers go through `current.json`,
//! and a Glue table names only published versions. Numbers still rise in publish order,
//! because a dataset is staged by one run at a time (the run's lease, held from its first
//! job to its publish or rollback) and each attempt of that run claims above the last.
//! **Publish** of such a version is O(1) whatever its size: the manifest (one put) and
//! the pointer (one conditional put), no copy. A chunked run's chunks and a Delta table's
//! files are staged under `_skein/staging/<run>/` and copied into the version at publish.
//! Publish reads `current.json` (and its e-tag), writes the version's manifest, and then
//! replaces `current.json` with a put conditional on the e-tag it read (or on its
//! absence): of two concurrent publishers only one swap succeeds, the other gets
//! [`Error::PublishConflict`] and removes its unpublished version. Staging's metadata is
//! deleted last; a version with a manifest is never deleted by it. An abandoned attempt's
//! version (a failed or superseded attempt, an interrupted stage) loses its files to the
//! run's discard (rollback, `skein gc`); its claim stays, so the number is not reused.
//! **Rollback** is the same conditional put naming the previous version, whose objects
//! were never touched, so they are restored byte for byte. Readers read `current.json`
//! first and then the version it names.
//!
//! The steps are separate, idempotent calls, so that `skein_usecases::publish` can record
//! its intent (`_skein/intent.json`) first and resume after a crash (or a Lambda that
//! timed out) between any two of them:
//! - [`S3TargetStore::claim`]: a claim already made by the same run is kept, so a crash
//!   after the claim re-uses the number; a number claimed by another run is skipped;
//! - [`S3TargetStore::move_staged`]: copies (overwriting a half-done copy) and then the
//!   manifest, which marks the version complete; called again, it returns that manifest;
//! - [`S3TargetStore::point_to`]: the conditional swap; when `current.json` already names
//!   the version it does nothing, when it names neither the version nor the one current
//!   when the intent was recorded, another publisher won: [`Error::PublishConflict`].

use std::path::Path as LocalPath;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use skein_core::manifest::Manifest;

use crate::delta::DeltaLog;
use crate::error::{Error, Result};
use crate::intent::Intent;
use crate::layout::{DataDir, MANIFEST, STAGED_MANIFEST};
use crate::s3::{S3Settings, explain, join_key};

/// The directory of skein's state under a target prefix.
pub const STATE_DIR: &str = "_skein";
/// The commit point, under [`STATE_DIR`].
pub const CURRENT: &str = "current.json";
/// The object that reserves a version number, inside the version's directory.
pub const CLAIM: &str = "_claim.json";
/// The version an attempt stages into, in the attempt's staging metadata.
pub const ATTEMPT_VERSION: &str = "_version.json";
/// The intent of a publish or rollback under way, under [`STATE_DIR`].
pub const INTENT: &str = "intent.json";
/// Where a plain Parquet target's versions go, under the target: a public prefix that
/// engines read (see the module's doc).
pub const VERSIONS_DIR: &str = "versions";
/// Where versions of the old layout are (and a Delta target's are), under the target.
pub const HIDDEN_VERSIONS_DIR: &str = crate::delta::VERSIONS_DIR;
/// Parts of one upload in flight at once (memory: this many times the part size).
const UPLOADS_IN_FLIGHT: usize = 2;
/// Copies and deletes in flight at once.
const CONCURRENCY: usize = 8;

/// What an attempt's `_version.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttemptVersion {
    version: u64,
}

/// What `current.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pointer {
    /// Dataset name.
    pub dataset: String,
    /// The current version.
    pub version: u64,
    /// Key of that version's manifest.
    pub manifest: String,
    /// RFC 3339 time of the swap.
    pub updated_at: String,
}

/// `current.json` as read, with the e-tag the next swap is conditional on.
#[derive(Debug, Clone)]
pub struct Head {
    /// The current version, `None` before the first publish.
    pub version: Option<u64>,
    tag: Option<UpdateVersion>,
}

/// A dataset's target on S3.
#[derive(Debug, Clone)]
pub struct S3TargetStore {
    dataset: String,
    bucket: String,
    /// The target's key prefix, without slashes at either end (may be empty).
    root: String,
    store: Arc<dyn ObjectStore>,
    s3: S3Settings,
    /// A Delta Lake target: the table's log (the table is the target prefix).
    pub(crate) delta: Option<DeltaLog>,
    /// The Glue table registered on publish and rollback (`target.glue`).
    pub(crate) glue: Option<skein_core::spec::GlueTable>,
    /// The attempt whose staging this handle reads and writes (`staging/<run>/a<N>/`); with
    /// none, the run's whole staging area.
    attempt: Option<u32>,
    /// One claim at a time for the handle and its clones (a stage's first writes).
    claiming: Arc<tokio::sync::Mutex<()>>,
    /// Objects copied by this handle and its clones (publish's copies), for the metrics.
    copies: Arc<std::sync::atomic::AtomicU64>,
}

impl S3TargetStore {
    /// The store of `dataset` at `s3://bucket/prefix/`.
    pub fn open(s3: &S3Settings, dataset: &str, bucket: &str, prefix: &str) -> Result<Self> {
        Ok(S3TargetStore {
            dataset: dataset.to_string(),
            bucket: bucket.to_string(),
            root: prefix.trim_matches('/').to_string(),
            store: s3.store(bucket)?,
            s3: s3.clone(),
            delta: None,
            glue: None,
            attempt: None,
            claiming: Arc::default(),
            copies: Arc::default(),
        })
    }

    /// Objects this handle (and its clones) copied: publish's copies of staged files. A
    /// plain Parquet attempt's publish copies nothing.
    pub fn copies(&self) -> u64 {
        self.copies.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same store, whose target prefix is a Delta Lake table (`format: delta`).
    pub fn with_delta(mut self) -> Result<Self> {
        self.delta = Some(DeltaLog::s3(
            &self.dataset,
            self.store.clone(),
            &self.bucket,
            &self.root,
        )?);
        Ok(self)
    }

    /// The same store, registered in the Glue Data Catalog on publish and rollback.
    pub fn with_glue(mut self, glue: Option<skein_core::spec::GlueTable>) -> Self {
        self.glue = glue;
        self
    }

    /// The S3 settings the store was opened with.
    pub(crate) fn settings(&self) -> &S3Settings {
        &self.s3
    }

    /// The bucket's client (its `/` is the bucket's root).
    pub(crate) fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// `s3://bucket/prefix/`.
    pub fn uri(&self) -> String {
        self.uri_of(&self.root)
    }

    fn uri_of(&self, key: &str) -> String {
        if key.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{key}/", self.bucket)
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Key of `current.json`.
    pub fn current_key(&self) -> String {
        join_key(&[&self.root, STATE_DIR, CURRENT])
    }

    /// The same store, fenced to one attempt (see [`crate::store::TargetStore::with_attempt`]).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Key prefix of a run's staging metadata (hidden): the attempt's own when fenced to
    /// one. A chunked run's and a Delta table's staged files are there too.
    pub fn meta_key(&self, run_id: &str) -> String {
        match self.attempt {
            Some(n) => join_key(&[
                &self.root,
                STATE_DIR,
                "staging",
                run_id,
                &crate::layout::attempt_dir(n),
            ]),
            None => join_key(&[&self.root, STATE_DIR, "staging", run_id]),
        }
    }

    /// Whether this handle stages straight into a version: a plain Parquet target (an
    /// attempt's staging, or a chunked run's, which its chunk jobs share).
    fn stages_in_version(&self) -> bool {
        self.delta.is_none()
    }

    /// The version this handle's staging (an attempt's, or a chunked run's) goes into,
    /// once claimed.
    pub async fn staged_version(&self, run_id: &str) -> Result<Option<u64>> {
        if !self.stages_in_version() {
            return Ok(None);
        }
        let key = join_key(&[&self.meta_key(run_id), ATTEMPT_VERSION]);
        Ok(self
            .get_json::<AttemptVersion>(&key)
            .await?
            .map(|(v, _)| v.version))
    }

    /// Where a run's staged objects are read: the attempt's version directory, else the
    /// staging metadata's directory.
    pub async fn staging_key(&self, run_id: &str) -> Result<String> {
        Ok(match self.staged_version(run_id).await? {
            Some(n) => self.new_version_key(n),
            None => self.meta_key(run_id),
        })
    }

    /// Where a run's staged objects are written: a plain Parquet target's staging claims
    /// its version first (the next free number, claimed as this run and attempt) and
    /// records it in `_version.json`. That record is created only if absent: of the chunk
    /// jobs of a run that race to make it (each in its own Lambda), one wins and the others
    /// read and use its number (their own claims stay empty, numbers never used).
    async fn staging_key_for_write(&self, run_id: &str) -> Result<String> {
        if !self.stages_in_version() {
            return Ok(self.meta_key(run_id));
        }
        let _one = self.claiming.lock().await;
        if let Some(n) = self.staged_version(run_id).await? {
            return Ok(self.new_version_key(n));
        }
        let n = self
            .claim_as(run_id, self.attempt, self.next_version().await?)
            .await?;
        let key = join_key(&[&self.meta_key(run_id), ATTEMPT_VERSION]);
        match self
            .put_json(&key, &AttemptVersion { version: n }, PutMode::Create)
            .await
        {
            Ok(()) => Ok(self.new_version_key(n)),
            Err(object_store::Error::AlreadyExists { .. }) => {
                match self.staged_version(run_id).await? {
                    Some(won) => Ok(self.new_version_key(won)),
                    None => Err(Error::Internal(format!(
                        "s3://{}/{key} exists and is gone again: another writer discarded the staging of run `{run_id}` while it was written",
                        self.bucket
                    ))),
                }
            }
            Err(e) => Err(self.fail("write", &key)(e)),
        }
    }

    /// Version `n`'s directory in the current layout.
    fn new_version_key(&self, n: u64) -> String {
        join_key(&[&self.versions_keys()[0], &format!("v{n}")])
    }

    /// The directories versions may be in, newest layout first: `versions/` and, for
    /// versions of the old layout, `_skein/versions/`; a Delta target's only the latter.
    fn versions_keys(&self) -> Vec<String> {
        let hidden = join_key(&[&self.root, HIDDEN_VERSIONS_DIR]);
        if self.delta.is_some() {
            vec![hidden]
        } else {
            vec![join_key(&[&self.root, VERSIONS_DIR]), hidden]
        }
    }

    /// Key prefix of version `n`: where its claim or manifest is (a version of the old
    /// layout stays under `_skein/versions/`), else where a new version goes.
    pub async fn version_key(&self, n: u64) -> Result<String> {
        let dirs = self.versions_keys();
        for dir in dirs.iter().skip(1) {
            let key = join_key(&[dir, &format!("v{n}")]);
            for marker in [CLAIM, MANIFEST] {
                if self.exists(&join_key(&[&key, marker])).await? {
                    return Ok(key);
                }
            }
        }
        Ok(join_key(&[&dirs[0], &format!("v{n}")]))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail("read", key)(e)),
        }
    }

    /// A run's staged Parquet files, for DataFusion.
    pub async fn staging_data(&self, run_id: &str) -> Result<DataDir> {
        Ok(self.data_dir(self.staging_key(run_id).await?))
    }

    /// Version `n`'s Parquet files, for DataFusion.
    pub async fn version_data(&self, n: u64) -> Result<DataDir> {
        Ok(self.data_dir(self.version_key(n).await?))
    }

    fn data_dir(&self, prefix: String) -> DataDir {
        DataDir::S3 {
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            prefix,
        }
    }

    fn fail(&self, op: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> Error {
        let dataset = self.dataset.clone();
        let uri = format!("s3://{}/{key}", self.bucket);
        let bucket = self.bucket.clone();
        move |e| Error::Storage {
            dataset,
            op,
            uri,
            message: explain(&bucket, &e),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, UpdateVersion)>> {
        let result = match self.store.get(&Path::from(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail("read", key)(e)),
        };
        let tag = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result.bytes().await.map_err(self.fail("read", key))?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Internal(format!(
                "s3://{}/{key} is not valid JSON of its kind: {e}",
                self.bucket
            ))
        })?;
        Ok(Some((value, tag)))
    }

    async fn put_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        mode: PutMode,
    ) -> Result<(), object_store::Error> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| object_store::Error::Generic {
            store: "skein",
            source: Box::new(e),
        })?;
        self.store
            .put_opts(
                &Path::from(key),
                PutPayload::from(json),
                PutOptions::from(mode),
            )
            .await
            .map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Path>> {
        let p = Path::from(prefix);
        self.store
            .list(Some(&p))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(self.fail("list", prefix))
    }

    async fn delete_all(&self, keys: Vec<Path>, what: &'static str) -> Result<()> {
        let deletes: Vec<_> = keys.into_iter().map(|k| self.delete_one(k, what)).collect();
        futures::stream::iter(deletes)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    async fn delete_one(&self, key: Path, what: &'static str) -> Result<()> {
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail("delete", &format!("{key} ({what})"))(e)),
        }
    }

    async fn copy_one(&self, from: Path, to: Path) -> Result<()> {
        self.copies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.store
            .copy(&from, &to)
            .await
            .map_err(self.fail("copy a staged file into", to.as_ref()))
    }

    /// Brings files of published version `n` (`names`, as its manifest lists them) into a
    /// run's staging: S3 has no links, and a version is one prefix that engines list (the
    /// Glue table's location), so each is copied server side (`CopyObject`: no byte
    /// passes through skein). Copying again overwrites with the same bytes.
    pub async fn adopt(&self, run_id: &str, n: u64, names: &[String]) -> Result<()> {
        let from = self.version_key(n).await?;
        let to = self.staging_key_for_write(run_id).await?;
        let copies: Vec<_> = names
            .iter()
            .map(|name| {
                self.copy_one(
                    Path::from(join_key(&[&from, name])),
                    Path::from(join_key(&[&to, name])),
                )
            })
            .collect();
        futures::stream::iter(copies)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The staged manifest of a run, if the run finished staging.
    pub async fn staged(&self, run_id: &str) -> Result<Option<Manifest>> {
        let key = join_key(&[&self.staging_key(run_id).await?, STAGED_MANIFEST]);
        Ok(self.get_json(&key).await?.map(|(m, _)| m))
    }

    /// Writes the staged manifest of a run (the last step of staging).
    pub async fn write_staged(&self, run_id: &str, manifest: &Manifest) -> Result<()> {
        let key = join_key(&[&self.staging_key_for_write(run_id).await?, STAGED_MANIFEST]);
        self.put_json(&key, manifest, PutMode::Overwrite)
            .await
            .map_err(self.fail("write", &key))
    }

    /// Uploads a staged Parquet file written locally (in one put, or in parts when big)
    /// and deletes the local copy.
    pub async fn upload_staged_file(
        &self,
        run_id: &str,
        name: &str,
        local: &LocalPath,
    ) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let key = join_key(&[&self.staging_key_for_write(run_id).await?, name]);
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(Error::io("open staged part", local))?;
        let mut writer = object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            Path::from(key.as_str()),
            self.s3.upload_part_bytes.max(5 * 1024 * 1024),
        )
        .with_max_concurrency(UPLOADS_IN_FLIGHT);
        let uploaded = async {
            tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = uploaded {
            let _ = writer.abort().await;
            return Err(Error::Storage {
                dataset: self.dataset.clone(),
                op: "upload",
                uri: format!("s3://{}/{key}", self.bucket),
                message: e.to_string(),
            });
        }
        tokio::fs::remove_file(local)
            .await
            .map_err(Error::io("remove uploaded part", local))
    }

    /// A JSON object under a run's staging prefix (`rel` may hold `/`), if present.
    pub(crate) async fn staging_json<T: serde::de::DeserializeOwned>(
        &self,
        run_id: &str,
        rel: &str,
    ) -> Result<Option<T>> {
        let key = join_key(&[&self.staging_key(run_id).await?, rel]);
        Ok(self.get_json(&key).await?.map(|(v, _)| v))
    }

    /// Writes a JSON object under a run's staging prefix.
    pub(crate) async fn put_staging_json<T: Serialize>(
        &self,
        run_id: &str,
        rel: &str,
        value: &T,
    ) -> Result<()> {
        let key = join_key(&[&self.staging_key_for_write(run_id).await?, rel]);
        self.put_json(&key, value, PutMode::Overwrite)
            .await
            .map_err(self.fail("write", &key))
    }

    /// Deletes the staging objects of a run whose file name starts with `prefix`.
    pub(crate) async fn discard_prefix(&self, run_id: &str, prefix: &str) -> Result<()> {
        let keys: Vec<Path> = self
            .list(&self.staging_key(run_id).await?)
            .await?
            .into_iter()
            .filter(|k| k.filename().is_some_and(|n| n.starts_with(prefix)))
            .collect();
        self.delete_all(keys, "a failed chunk's files").await
    }

    /// The runs that have objects in staging (finished or not), for garbage collection.
    pub async fn staging_runs(&self) -> Result<Vec<String>> {
        let root = join_key(&[&self.root, STATE_DIR, "staging"]);
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from(root.as_str())))
            .await
            .map_err(self.fail("list", &root))?;
        let mut runs: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// Deletes a run's staging objects: its metadata, and the files of each version its
    /// attempts staged into that has no manifest (a version with one was published, or is
    /// being published, and stays). The claims stay, so no number is used twice.
    pub async fn discard(&self, run_id: &str) -> Result<()> {
        let keys = self.list(&self.meta_key(run_id)).await?;
        for key in keys
            .iter()
            .filter(|k| k.filename() == Some(ATTEMPT_VERSION))
        {
            let Some((v, _)) = self.get_json::<AttemptVersion>(key.as_ref()).await? else {
                continue;
            };
            let dir = self.new_version_key(v.version);
            if self.exists(&join_key(&[&dir, MANIFEST])).await? {
                continue;
            }
            let files: Vec<Path> = self
                .list(&dir)
                .await?
                .into_iter()
                .filter(|k| k.filename() != Some(CLAIM))
                .collect();
            self.delete_all(files, "an unpublished attempt's version")
                .await?;
        }
        self.delete_all(keys, "staging").await
    }

    /// Reads `current.json`: the current version and the e-tag to swap against.
    pub async fn head(&self) -> Result<Head> {
        Ok(match self.get_json::<Pointer>(&self.current_key()).await? {
            Some((p, tag)) => Head {
                version: Some(p.version),
                tag: Some(tag),
            },
            None => Head {
                version: None,
                tag: None,
            },
        })
    }

    /// The manifest of version `n`, if it was published (written in full).
    pub async fn manifest(&self, n: u64) -> Result<Option<Manifest>> {
        let key = join_key(&[&self.version_key(n).await?, MANIFEST]);
        Ok(self.get_json(&key).await?.map(|(m, _)| m))
    }

    /// The manifest of the version `current.json` names, if any.
    pub async fn current(&self) -> Result<Option<Manifest>> {
        match self.head().await?.version {
            Some(n) => Ok(Some(self.manifest(n).await?.ok_or_else(|| {
                Error::Internal(format!(
                    "{} names v{n}, which has no manifest",
                    self.uri_of(&self.current_key())
                ))
            })?)),
            None => Ok(None),
        }
    }

    /// Every version directory (claimed, perhaps never finished) in either layout, by
    /// number, with its key prefix.
    async fn version_dirs(&self) -> Result<Vec<(u64, String)>> {
        let mut dirs = Vec::new();
        for prefix in self.versions_keys() {
            let listed = self
                .store
                .list_with_delimiter(Some(&Path::from(prefix.as_str())))
                .await
                .map_err(self.fail("list", &prefix))?;
            dirs.extend(listed.common_prefixes.iter().filter_map(|p| {
                let n = p.filename()?.strip_prefix('v')?.parse().ok()?;
                Some((n, p.to_string()))
            }));
        }
        dirs.sort();
        Ok(dirs)
    }

    /// Manifests of every published version, oldest first.
    pub async fn versions(&self) -> Result<Vec<Manifest>> {
        let mut out: Vec<Manifest> = Vec::new();
        for (n, dir) in self.version_dirs().await? {
            if out.last().is_some_and(|m| m.version == n) {
                continue;
            }
            let key = join_key(&[&dir, MANIFEST]);
            if let Some((m, _)) = self.get_json::<Manifest>(&key).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Publishes a run's staged version as the next version, if `current.json` is still
    /// what it was when this call read it.
    pub async fn publish(&self, run_id: &str) -> Result<Manifest> {
        let head = self.head().await?;
        self.publish_after(run_id, &head).await
    }

    /// Publishes a run's staged version as the next version if `current.json` is still as
    /// `head` saw it; otherwise [`Error::PublishConflict`] and nothing of this run is
    /// current.
    pub async fn publish_after(&self, run_id: &str, head: &Head) -> Result<Manifest> {
        if self.staged(run_id).await?.is_none() {
            return Err(Error::NotStaged {
                dataset: self.dataset.clone(),
                run_id: run_id.to_string(),
            });
        }
        let next = match self.staged_version(run_id).await? {
            Some(n) => self.claim(run_id, n).await?,
            None => self.claim(run_id, self.next_version().await?).await?,
        };
        let manifest = self.move_staged(run_id, next).await?;
        if let Err(e) = self.swap(next, head).await {
            if matches!(e, Error::PublishConflict { .. }) {
                let _ = self.abandon(next).await;
            }
            return Err(e);
        }
        // Published: leftover staging objects are only litter (the next stage of this run
        // id deletes them), so their removal failing does not fail the publish.
        if let Err(e) = self.discard(run_id).await {
            tracing::warn!(dataset = %self.dataset, run_id, "staging not deleted after publish: {e}");
        }
        Ok(manifest)
    }

    /// The number a new version gets: one above every claimed version directory, in
    /// either layout.
    pub async fn next_version(&self) -> Result<u64> {
        Ok(self.version_dirs().await?.last().map_or(0, |(n, _)| *n) + 1)
    }

    /// Reserves version number `n` for `run_id`, or the first one above it that is free:
    /// the claim is a create-if-absent put, and a claim the same run made before (an
    /// attempt that crashed after it) is kept.
    pub async fn claim(&self, run_id: &str, n: u64) -> Result<u64> {
        self.claim_as(run_id, None, n).await
    }

    /// [`claim`](Self::claim) for one attempt of the run (`Some`: an attempt that stages
    /// into the version; only that attempt's own claim is kept, another attempt's is
    /// skipped) or for the run's publish (`None`: any claim of the run is kept).
    async fn claim_as(&self, run_id: &str, attempt: Option<u32>, n: u64) -> Result<u64> {
        let mut next = n;
        let claim = match attempt {
            Some(a) => {
                serde_json::json!({ "runId": run_id, "attempt": a, "at": skein_core::time::now() })
            }
            None => serde_json::json!({ "runId": run_id, "at": skein_core::time::now() }),
        };
        for _ in 0..64 {
            let key = join_key(&[&self.version_key(next).await?, CLAIM]);
            match self.put_json(&key, &claim, PutMode::Create).await {
                Ok(()) => return Ok(next),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let by = self.get_json::<serde_json::Value>(&key).await?;
                    let by = by.as_ref().map(|(c, _)| c);
                    let same_run = by.and_then(|c| c.get("runId")?.as_str()) == Some(run_id);
                    let by_attempt = by.and_then(|c| c.get("attempt")?.as_u64());
                    if same_run && (attempt.is_none() || by_attempt == attempt.map(u64::from)) {
                        return Ok(next);
                    }
                    next += 1;
                }
                Err(e) => return Err(self.fail("claim a version number at", &key)(e)),
            }
        }
        Err(Error::PublishConflict {
            dataset: self.dataset.clone(),
            uri: self.uri_of(&self.versions_keys()[0]),
        })
    }

    /// Copies a run's staged files into version `n`'s prefix (claimed by the caller) and
    /// writes the manifest last. Called again after it finished, returns that manifest.
    pub async fn move_staged(&self, run_id: &str, n: u64) -> Result<Manifest> {
        if let Some(m) = self.manifest(n).await? {
            if m.run_id == run_id {
                return Ok(m);
            }
            return Err(Error::Internal(format!(
                "dataset `{}`: v{n} already holds run `{}`'s version, not run `{run_id}`'s",
                self.dataset, m.run_id
            )));
        }
        let mut manifest = self.staged(run_id).await?.ok_or_else(|| Error::NotStaged {
            dataset: self.dataset.clone(),
            run_id: run_id.to_string(),
        })?;
        manifest.version = n;
        manifest.published_at = Some(skein_core::time::now());
        let version = self.version_key(n).await?;
        // Staged in `v<n>` itself: the files are where they belong, nothing to copy.
        if self.staged_version(run_id).await? != Some(n) {
            let staging = self.staging_key(run_id).await?;
            let copies: Vec<_> = manifest
                .files
                .iter()
                .map(|f| {
                    self.copy_one(
                        Path::from(join_key(&[&staging, &f.name])),
                        Path::from(join_key(&[&version, &f.name])),
                    )
                })
                .collect();
            futures::stream::iter(copies)
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
        }
        let manifest_key = join_key(&[&version, MANIFEST]);
        self.put_json(&manifest_key, &manifest, PutMode::Overwrite)
            .await
            .map_err(self.fail("write", &manifest_key))?;
        Ok(manifest)
    }

    /// Makes version `n` current if `current.json` names it already (nothing to do) or
    /// still names `from`, the version current when the caller's intent was recorded;
    /// otherwise another publisher won: [`Error::PublishConflict`].
    pub async fn point_to(&self, n: u64, from: Option<u64>) -> Result<()> {
        let head = self.head().await?;
        if head.version == Some(n) {
            return Ok(());
        }
        if head.version != from {
            return Err(Error::PublishConflict {
                dataset: self.dataset.clone(),
                uri: format!("s3://{}/{}", self.bucket, self.current_key()),
            });
        }
        self.swap(n, &head).await
    }

    /// Deletes an unpublished version's files and manifest; its claim stays, so the
    /// number is never reused. A version that is also a staging (staged straight into it)
    /// loses only its manifest: it is no version, and its run may still publish it.
    pub async fn abandon(&self, n: u64) -> Result<()> {
        let keys: Vec<Path> = self
            .list(&self.version_key(n).await?)
            .await?
            .into_iter()
            .filter(|k| k.filename() != Some(CLAIM))
            .collect();
        if keys.iter().any(|k| k.filename() == Some(STAGED_MANIFEST)) {
            let manifest: Vec<Path> = keys
                .into_iter()
                .filter(|k| k.filename() == Some(MANIFEST))
                .collect();
            return self
                .delete_all(manifest, "unpublished version's manifest")
                .await;
        }
        self.delete_all(keys, "unpublished version").await
    }

    fn intent_key(&self) -> String {
        join_key(&[&self.root, STATE_DIR, INTENT])
    }

    /// The intent of a publish or rollback under way, if one was recorded.
    pub async fn intent(&self) -> Result<Option<Intent>> {
        Ok(self.get_json(&self.intent_key()).await?.map(|(i, _)| i))
    }

    /// Records an intent (one put: S3 makes it whole or not at all).
    pub async fn record_intent(&self, intent: &Intent) -> Result<()> {
        let key = self.intent_key();
        self.put_json(&key, intent, PutMode::Overwrite)
            .await
            .map_err(self.fail("write", &key))
    }

    /// Removes the intent (the protocol's last step).
    pub async fn clear_intent(&self) -> Result<()> {
        self.delete_one(Path::from(self.intent_key()), "intent")
            .await
    }

    /// Replaces `current.json` with one naming `version`, conditional on `head`.
    async fn swap(&self, version: u64, head: &Head) -> Result<()> {
        let key = self.current_key();
        let pointer = Pointer {
            dataset: self.dataset.clone(),
            version,
            manifest: join_key(&[&self.version_key(version).await?, MANIFEST]),
            updated_at: skein_core::time::now(),
        };
        let mode = match &head.tag {
            Some(tag) => PutMode::Update(tag.clone()),
            None => PutMode::Create,
        };
        match self.put_json(&key, &pointer, mode).await {
            Ok(()) => Ok(()),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Err(Error::PublishConflict {
                dataset: self.dataset.clone(),
                uri: format!("s3://{}/{key}", self.bucket),
            }),
            Err(e) => Err(self.fail("swap", &key)(e)),
        }
    }

    /// Makes an existing version current again (finishing an interrupted publish, or a
    /// re-run that matches an older version).
    pub async fn point_at(&self, version: u64) -> Result<()> {
        let head = self.head().await?;
        self.point_at_after(version, &head).await
    }

    /// [`point_at`](Self::point_at), conditional on `head`.
    pub async fn point_at_after(&self, version: u64, head: &Head) -> Result<()> {
        if self.manifest(version).await?.is_none() {
            return Err(Error::Internal(format!(
                "version {version} of `{}` has no manifest",
                self.dataset
            )));
        }
        if head.version == Some(version) {
            return Ok(());
        }
        self.swap(version, head).await
    }

    /// Points the dataset back at the version before the current one. Returns the
    /// manifests (rolled back from, restored).
    pub async fn rollback(&self) -> Result<(Manifest, Manifest)> {
        let (current, previous) = self.rollback_plan().await?;
        self.point_to(previous.version, Some(current.version))
            .await?;
        Ok((current, previous))
    }

    /// The current version and the one a rollback restores (the newest before it).
    pub async fn rollback_plan(&self) -> Result<(Manifest, Manifest)> {
        let current = self
            .current()
            .await?
            .ok_or_else(|| Error::NothingToRollBack {
                dataset: self.dataset.clone(),
                current: "none (never published)".into(),
            })?;
        let previous = self
            .versions()
            .await?
            .into_iter()
            .filter(|m| m.version < current.version)
            .max_by_key(|m| m.version)
            .ok_or_else(|| Error::NothingToRollBack {
                dataset: self.dataset.clone(),
                current: format!("v{}, the first", current.version),
            })?;
        Ok((current, previous))
    }

    /// Stores a report (e.g. a diff) under `_skein/reports/`.
    pub async fn save_report(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let key = join_key(&[&self.root, STATE_DIR, "reports", name]);
        self.store
            .put(&Path::from(key.as_str()), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(self.fail("write", &key))
    }
}
