//! The local target store: staging, versions, and the atomic publish.
//!
//! Layout for a target `/lake/orders` (`<parent>/<name>`):
//! ```text
//! /lake/orders -> .orders.skein/versions/v3        the published dataset (a symlink)
//! /lake/.orders.skein/staging/<run>/a<N>/part-*.parquet  attempt N's output, not yet public
//! /lake/.orders.skein/staging/<run>/a<N>/_staged.json    written last: the staged manifest
//! /lake/.orders.skein/versions/v<N>/               every published version, kept
//! /lake/.orders.skein/versions/v<N>/_manifest.json its manifest
//! /lake/.orders.skein/_intent.json                 a publish or rollback under way
//! ```
//! **Publish** renames the staging directory to `versions/v<N>` and then replaces the
//! symlink with `rename(2)`, which is atomic: a reader that globs `/lake/orders/*.parquet`
//! resolves the link once and sees either the old or the new version, never a mix or
//! nothing. **Rollback** points the link back at the previous version's directory, whose
//! files were never touched, so they are restored byte for byte.
//!
//! The steps are separate calls so that the protocol in `skein_usecases::publish` can
//! record its [`Intent`] first and resume after a crash between any two of them; each is
//! idempotent:
//! - [`TargetStore::move_staged`] writes the version's manifest into the staging
//!   directory and renames it to `versions/v<N>` (one `rename(2)`: after a crash the files
//!   are either all still staged or all in `v<N>`; called again, it returns `v<N>`'s
//!   manifest);
//! - [`TargetStore::point_at`] swaps the link (a crash leaves the old link or the new one;
//!   pointing at the version it already names changes nothing);
//! - [`TargetStore::clear_intent`] removes the intent, last.
//!
//! On S3 there is no atomic rename; there a conditional put of `_skein/current.json` is
//! the commit point (see [`crate::s3_store`]). [`crate::target::Target`] covers both.
//!
//! A Delta Lake target (`format: delta`) is a real directory, the table, and the store
//! lives inside it: the link is `_skein/current`, the versions are `_skein/versions/v<N>`
//! (the paths the table's commits name), staging is `_skein/staging/<run>/`; the Delta
//! commit ([`crate::delta`]) is what readers follow, the link what skein follows:
//! ```text
//! /lake/orders/_delta_log/00000000000000000003.json the table's commits
//! /lake/orders/_skein/current -> versions/v3        skein's current version
//! /lake/orders/_skein/versions/v<N>/part-*.parquet  every published version, kept
//! ```

use std::path::{Path, PathBuf};

use skein_core::load::SpecFile;
use skein_core::manifest::Manifest;

use crate::delta::DeltaLog;
use crate::error::{Error, Result};
use crate::intent::Intent;
use crate::layout::{MANIFEST, STAGED_MANIFEST};
use crate::location::Location;

/// Name of the intent of a publish or rollback under way, in the store's directory.
pub const INTENT: &str = "_intent.json";

/// A dataset's target on the local file system.
#[derive(Debug, Clone)]
pub struct TargetStore {
    dataset: String,
    link: PathBuf,
    root: PathBuf,
    link_value_prefix: PathBuf,
    /// A Delta Lake target: the table's directory and log.
    pub(crate) delta: Option<(PathBuf, DeltaLog)>,
    /// The attempt whose staging this handle reads and writes (`staging/<run>/a<N>/`); with
    /// none, the run's whole staging area (`staging/<run>/`).
    attempt: Option<u32>,
}

impl TargetStore {
    /// The store of a spec's target. Fails if the target exists and is not ours.
    pub fn open(file: &SpecFile) -> Result<TargetStore> {
        let location = Location::resolve(&file.spec.spec.target.uri, file.base_dir());
        let link = location
            .local(file.name(), "spec.target.uri")?
            .to_path_buf();
        let link = absolute(&link);
        let base = link
            .file_name()
            .ok_or_else(|| Error::UnsupportedUri {
                dataset: file.name().to_string(),
                field: "spec.target.uri",
                uri: file.spec.spec.target.uri.clone(),
                message: "the target must name a directory, not a root".into(),
            })?
            .to_string_lossy()
            .to_string();
        if file.spec.spec.target.is_delta() {
            return TargetStore::open_delta(file.name(), link);
        }
        let parent = link.parent().unwrap_or(Path::new("/")).to_path_buf();
        let store_name = format!(".{base}.skein");
        let store = TargetStore {
            dataset: file.name().to_string(),
            root: parent.join(&store_name),
            link_value_prefix: PathBuf::from(store_name).join("versions"),
            link,
            delta: None,
            attempt: None,
        };
        store.check_managed()?;
        Ok(store)
    }

    /// The store inside the Delta table at `table`. Fails if `table` holds anything but a
    /// Delta log and skein's store.
    fn open_delta(dataset: &str, table: PathBuf) -> Result<TargetStore> {
        let root = table.join(crate::delta::STATE_DIR);
        let store = TargetStore {
            dataset: dataset.to_string(),
            link: root.join("current"),
            link_value_prefix: PathBuf::from("versions"),
            root,
            delta: Some((table.clone(), DeltaLog::local(dataset, &table)?)),
            attempt: None,
        };
        match std::fs::read_dir(&table) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if name != "_delta_log" && name != crate::delta::STATE_DIR {
                        return Err(Error::TargetNotManaged {
                            dataset: dataset.to_string(),
                            path: table,
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("list", &table)(e)),
        }
        store.check_managed()?;
        Ok(store)
    }

    /// The published path readers use: the link, or a Delta table's directory.
    pub fn path(&self) -> &Path {
        match &self.delta {
            Some((table, _)) => table,
            None => &self.link,
        }
    }

    /// The store's own directory (staging and versions).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn check_managed(&self) -> Result<()> {
        match std::fs::symlink_metadata(&self.link) {
            Err(_) => Ok(()),
            Ok(m) if m.file_type().is_symlink() => {
                let value =
                    std::fs::read_link(&self.link).map_err(Error::io("read link", &self.link))?;
                if value.starts_with(&self.link_value_prefix) {
                    Ok(())
                } else {
                    Err(self.not_managed())
                }
            }
            Ok(m) if m.is_dir() => {
                let empty = std::fs::read_dir(&self.link)
                    .map_err(Error::io("list", &self.link))?
                    .next()
                    .is_none();
                if empty {
                    Ok(())
                } else {
                    Err(self.not_managed())
                }
            }
            Ok(_) => Err(self.not_managed()),
        }
    }

    fn not_managed(&self) -> Error {
        Error::TargetNotManaged {
            dataset: self.dataset.clone(),
            path: self.link.clone(),
        }
    }

    /// The same store, fenced to one attempt: its staging is `staging/<run>/a<attempt>/`, so
    /// two attempts of a run (a stale worker and its successor) never share or delete each
    /// other's files.
    pub fn with_attempt(mut self, attempt: u32) -> TargetStore {
        self.attempt = Some(attempt);
        self
    }

    /// The staging directory of a run: the attempt's own when the store is fenced to one.
    pub fn staging_dir(&self, run_id: &str) -> PathBuf {
        let run = self.root.join("staging").join(run_id);
        match self.attempt {
            Some(n) => run.join(crate::layout::attempt_dir(n)),
            None => run,
        }
    }

    /// The directory of published version `n`.
    pub fn version_dir(&self, n: u64) -> PathBuf {
        self.root.join("versions").join(format!("v{n}"))
    }

    /// The staged manifest of a run, if the run finished staging.
    pub fn staged(&self, run_id: &str) -> Result<Option<Manifest>> {
        read_manifest(&self.staging_dir(run_id).join(STAGED_MANIFEST))
    }

    /// Writes the staged manifest of a run (the last step of staging).
    pub fn write_staged(&self, run_id: &str, manifest: &Manifest) -> Result<()> {
        write_json(&self.staging_dir(run_id).join(STAGED_MANIFEST), manifest)
    }

    /// Brings files of published version `n` (`names`, as its manifest lists them) into a
    /// run's staging as hard links: the new version shares their bytes with `v<n>`, copying
    /// none, and both stay intact whichever is removed. On a file system without hard
    /// links each file is copied instead. A link left by an earlier try is kept.
    pub fn adopt(&self, run_id: &str, n: u64, names: &[String]) -> Result<()> {
        let (from, to) = (self.version_dir(n), self.staging_dir(run_id));
        for name in names {
            let (src, dst) = (from.join(name), to.join(name));
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io("create staging", parent))?;
            }
            match std::fs::hard_link(&src, &dst) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => {
                    std::fs::copy(&src, &dst).map_err(Error::io("copy into staging", &src))?;
                }
            }
        }
        Ok(())
    }

    /// The runs that have a staging directory (finished or not), for garbage collection.
    pub fn staging_runs(&self) -> Result<Vec<String>> {
        let dir = self.root.join("staging");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list staging", &dir)(e)),
        };
        let mut runs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list staging", &dir))?;
            if entry.path().is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                runs.push(name.to_string());
            }
        }
        runs.sort();
        Ok(runs)
    }

    /// Removes a run's staging directory.
    pub fn discard(&self, run_id: &str) -> Result<()> {
        let dir = self.staging_dir(run_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io("remove staging", &dir))?;
        }
        Ok(())
    }

    /// The version number the link points at, if published.
    pub fn current_version(&self) -> Result<Option<u64>> {
        match std::fs::read_link(&self.link) {
            Ok(value) => {
                let n = value
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix('v'))
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| self.not_managed())?;
                Ok(Some(n))
            }
            Err(_) => Ok(None),
        }
    }

    /// The manifest of the published version, if any.
    pub fn current(&self) -> Result<Option<Manifest>> {
        match self.current_version()? {
            Some(n) => read_manifest(&self.version_dir(n).join(MANIFEST)),
            None => Ok(None),
        }
    }

    /// Manifests of every version in the store, oldest first.
    pub fn versions(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for n in self.version_numbers() {
            if let Some(m) = self.version_manifest(n)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Publishes a run's staged version: it becomes version N+1 and current, atomically.
    /// (Without an intent: the use cases publish through `skein_usecases::publish`.)
    pub fn publish(&self, run_id: &str) -> Result<Manifest> {
        let manifest = self.move_staged(run_id, self.next_version()?)?;
        self.point_at(manifest.version)?;
        Ok(manifest)
    }

    /// The number a new version gets: one above every version directory.
    pub fn next_version(&self) -> Result<u64> {
        Ok(self.version_numbers().last().copied().unwrap_or(0) + 1)
    }

    fn version_numbers(&self) -> Vec<u64> {
        let dir = self.root.join("versions");
        let mut numbers: Vec<u64> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.parse().ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        numbers.sort();
        numbers
    }

    /// The manifest of version `n`, if it is in place.
    pub fn version_manifest(&self, n: u64) -> Result<Option<Manifest>> {
        read_manifest(&self.version_dir(n).join(MANIFEST))
    }

    /// Moves a run's staged files into `versions/v<n>` with their manifest (one
    /// `rename(2)`). Called again after it happened, returns the version's manifest.
    pub fn move_staged(&self, run_id: &str, n: u64) -> Result<Manifest> {
        if let Some(m) = self.version_manifest(n)? {
            if m.run_id == run_id {
                return Ok(m);
            }
            return Err(Error::Internal(format!(
                "dataset `{}`: v{n} already holds run `{}`'s version, not run `{run_id}`'s",
                self.dataset, m.run_id
            )));
        }
        let mut manifest = self.staged(run_id)?.ok_or_else(|| Error::NotStaged {
            dataset: self.dataset.clone(),
            run_id: run_id.to_string(),
        })?;
        manifest.version = n;
        manifest.published_at = Some(skein_core::time::now());
        let staging = self.staging_dir(run_id);
        write_json(&staging.join(MANIFEST), &manifest)?;
        let version_dir = self.version_dir(n);
        let versions = self.root.join("versions");
        std::fs::create_dir_all(&versions).map_err(Error::io("create", &versions))?;
        std::fs::rename(&staging, &version_dir)
            .map_err(Error::io("move staged version into place at", &version_dir))?;
        if self.attempt.is_some() {
            // the run's directory, empty unless a superseded attempt left files behind
            let _ = std::fs::remove_dir(self.root.join("staging").join(run_id));
        }
        sync_dir(&versions);
        sync_dir(&self.root.join("staging"));
        Ok(manifest)
    }

    /// The intent of a publish or rollback under way, if one was recorded.
    pub fn intent(&self) -> Result<Option<Intent>> {
        let path = self.root.join(INTENT);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal(format!("{} is not valid: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                op: "read intent",
                path,
                source: e,
            }),
        }
    }

    /// Records an intent durably (temp file, fsync, rename, fsync of the directory).
    pub fn record_intent(&self, intent: &Intent) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(Error::io("create", &self.root))?;
        write_json(&self.root.join(INTENT), intent)
    }

    /// Removes the intent (the protocol's last step).
    pub fn clear_intent(&self) -> Result<()> {
        let path = self.root.join(INTENT);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.root);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                op: "remove intent",
                path,
                source: e,
            }),
        }
    }

    /// Makes an existing version current again (used to finish an interrupted publish and
    /// by rollback).
    pub fn point_at(&self, version: u64) -> Result<()> {
        let dir = self.version_dir(version);
        if !dir.join(MANIFEST).exists() {
            return Err(Error::Internal(format!(
                "version {} of `{}` has no manifest",
                version, self.dataset
            )));
        }
        let parent = self.link.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        let value = self.link_value_prefix.join(format!("v{version}"));
        let tmp = parent.join(format!(
            ".{}.skein-link-{}",
            self.link
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&value, &tmp).map_err(Error::io("create link", &tmp))?;
        if let Ok(m) = std::fs::symlink_metadata(&self.link)
            && m.is_dir()
        {
            // an empty directory stood where the dataset goes (checked in `open`)
            std::fs::remove_dir(&self.link)
                .map_err(Error::io("remove empty target directory", &self.link))?;
        }
        std::fs::rename(&tmp, &self.link).map_err(Error::io("swap link", &self.link))?;
        sync_dir(parent);
        Ok(())
    }

    /// Points the dataset back at the version before the current one. Returns the
    /// manifests (rolled back from, restored).
    pub fn rollback(&self) -> Result<(Manifest, Manifest)> {
        let (current, previous) = self.rollback_plan()?;
        self.point_at(previous.version)?;
        Ok((current, previous))
    }

    /// The current version and the one a rollback restores (the newest before it).
    pub fn rollback_plan(&self) -> Result<(Manifest, Manifest)> {
        let current = self.current()?.ok_or_else(|| Error::NothingToRollBack {
            dataset: self.dataset.clone(),
            current: "none (never published)".into(),
        })?;
        let previous = self
            .versions()?
            .into_iter()
            .filter(|m| m.version < current.version)
            .max_by_key(|m| m.version)
            .ok_or_else(|| Error::NothingToRollBack {
                dataset: self.dataset.clone(),
                current: format!("v{}, the first", current.version),
            })?;
        Ok((current, previous))
    }

    /// A published version made from the same spec and source, if one exists.
    pub fn find_version(&self, spec_hash: &str, fingerprint: &str) -> Result<Option<Manifest>> {
        Ok(self
            .versions()?
            .into_iter()
            .rev()
            .find(|m| m.spec_hash == spec_hash && m.source_fingerprint == fingerprint))
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("manifest {} is not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "read manifest",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Writes a manifest or an intent durably: temp file, fsync, rename, fsync of the directory.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("{} to JSON: {e}", path.display())))?;
    let mut f = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(&json).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Best-effort fsync of a directory, so renames inside it survive a power cut.
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}
