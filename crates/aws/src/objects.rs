//! S3 objects the functions read beyond the data plane: the spec files of a run (copied to
//! a local directory for the planner) and run-request objects (the S3 trigger).
//! Through `object_store`, like the data plane.

use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::config::AwsSettings;

/// An `s3://bucket/key` split in two, or a message saying what is wrong.
pub fn split_s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{uri}` is not an s3:// URI (expected s3://bucket/prefix/)"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "`{uri}` names no bucket (expected s3://bucket/prefix/)"
        ));
    }
    Ok((bucket.to_string(), key.to_string()))
}

/// The object store of one bucket, configured like the SDK clients.
pub fn bucket(settings: &AwsSettings, bucket: &str) -> Result<Arc<AmazonS3>, String> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = settings.endpoint_in_effect() {
        b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
    }
    if let Some(r) = settings.region_in_effect() {
        b = b.with_region(r);
    }
    if let Some((id, secret)) = &settings.credentials {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
    }
    b.build()
        .map(Arc::new)
        .map_err(|e| format!("cannot use bucket `{bucket}`: {e}"))
}

/// Copies the spec files (`*.yaml`, `*.yml`, and `skein.yaml`) under an S3 prefix into
/// `dir`, keeping their relative paths. Returns how many were copied.
pub async fn copy_specs(settings: &AwsSettings, uri: &str, dir: &Path) -> Result<usize, String> {
    let (bucket_name, key) = split_s3_uri(uri)?;
    let store = bucket(settings, &bucket_name)?;
    let prefix = key.trim_end_matches('/');
    let prefix_path = ObjectPath::from(prefix);
    let listing: Vec<_> = store
        .list((!prefix.is_empty()).then_some(&prefix_path))
        .try_collect()
        .await
        .map_err(|e| format!("cannot list {uri}: {e}"))?;
    let mut copied = 0;
    for meta in listing {
        let name = meta.location.to_string();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let rel = name
            .strip_prefix(prefix)
            .unwrap_or(&name)
            .trim_start_matches('/');
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| format!("cannot read s3://{bucket_name}/{name}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("cannot read s3://{bucket_name}/{name}: {e}"))?;
        std::fs::write(&to, &bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        copied += 1;
    }
    if copied == 0 {
        return Err(format!(
            "no spec files (*.yaml) under {uri}; upload the dataset specs (and skein.yaml) there"
        ));
    }
    Ok(copied)
}

/// Reads one object as text.
pub async fn read_text(
    settings: &AwsSettings,
    bucket_name: &str,
    key: &str,
) -> Result<String, String> {
    let store = bucket(settings, bucket_name)?;
    let bytes = store
        .get(&ObjectPath::from(key))
        .await
        .map_err(|e| format!("cannot read s3://{bucket_name}/{key}: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read s3://{bucket_name}/{key}: {e}"))?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| format!("s3://{bucket_name}/{key} is not UTF-8 text"))
}

/// Writes one object (the run's item lists, for the Distributed Maps' `ItemReader`).
pub async fn write_text(
    settings: &AwsSettings,
    bucket_name: &str,
    key: &str,
    text: String,
) -> Result<(), String> {
    let store = bucket(settings, bucket_name)?;
    store
        .put(&ObjectPath::from(key), text.into_bytes().into())
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot write s3://{bucket_name}/{key}: {e}"))
}
