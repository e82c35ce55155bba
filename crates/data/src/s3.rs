//! S3 access for the data plane: settings from the standard AWS environment (overridable
//! in-process), one `object_store` client per bucket, and S3 failures turned into
//! messages that say what to do.
//!
//! DataFusion reads S3 sources and targets through the same clients: [`S3Settings::register`]
//! puts a bucket's client into a session's object-store registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use crate::error::{Error, Result};

/// Default size of an upload part: 16 MiB.
pub const DEFAULT_UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;

/// Region used when neither the settings nor the environment name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How to reach S3. [`S3Settings::from_env`] reads the standard AWS variables; tests and
/// embedders set the fields instead (many threads, no environment changes).
#[derive(Clone)]
pub struct S3Settings {
    /// Endpoint URL (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`); `None`: AWS itself.
    /// Requests use path-style addressing (`<endpoint>/<bucket>/<key>`) when it is set.
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`, `AWS_DEFAULT_REGION`; default `us-east-1`).
    pub region: Option<String>,
    /// Static credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`). `None`: the other standard sources (web identity, the
    /// container or instance metadata endpoints), as the AWS environment provides them.
    pub credentials: Option<S3Credentials>,
    /// Allow plain HTTP (`AWS_ALLOW_HTTP=true`); always allowed for an `http://` endpoint.
    pub allow_http: bool,
    /// Staged files up to this size are uploaded in one put, bigger ones in parts of
    /// this size (S3's minimum part is 5 MiB). Default [`DEFAULT_UPLOAD_PART_BYTES`].
    pub upload_part_bytes: usize,
    /// Clients built so far, one per bucket (shared by clones of these settings).
    clients: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

/// Static AWS credentials.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|c| &c.access_key_id),
            )
            .field("allow_http", &self.allow_http)
            .field("upload_part_bytes", &self.upload_part_bytes)
            .finish()
    }
}

impl Default for S3Settings {
    /// AWS itself, credentials from the role (no environment read).
    fn default() -> S3Settings {
        S3Settings {
            endpoint: None,
            region: None,
            credentials: None,
            allow_http: false,
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
            clients: Arc::default(),
        }
    }
}

impl S3Settings {
    /// Settings from the standard AWS environment variables.
    pub fn from_env() -> S3Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        S3Settings {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            credentials,
            allow_http: var("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
            clients: Arc::default(),
        }
    }

    /// Settings for an S3-compatible endpoint with static credentials (e.g. a local moto).
    pub fn with_endpoint(
        endpoint: &str,
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> S3Settings {
        S3Settings {
            endpoint: Some(endpoint.to_string()),
            region: Some(region.to_string()),
            credentials: Some(S3Credentials {
                access_key_id: access_key_id.to_string(),
                secret_access_key: secret_access_key.to_string(),
                session_token: None,
            }),
            allow_http: endpoint.starts_with("http://"),
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
            clients: Arc::default(),
        }
    }

    /// The client of `bucket`, built on first use.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| Error::Internal("S3 client cache poisoned".into()))?;
        if let Some(c) = clients.get(bucket) {
            return Ok(c.clone());
        }
        let mut builder = match &self.credentials {
            Some(c) => {
                let mut b = AmazonS3Builder::new()
                    .with_access_key_id(&c.access_key_id)
                    .with_secret_access_key(&c.secret_access_key);
                if let Some(t) = &c.session_token {
                    b = b.with_token(t);
                }
                b
            }
            // web identity, container credentials, instance metadata
            None => AmazonS3Builder::from_env(),
        };
        builder = builder
            .with_bucket_name(bucket)
            .with_region(self.region.as_deref().unwrap_or(DEFAULT_REGION))
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(self.allow_http || endpoint.starts_with("http://"));
        } else {
            builder = builder.with_allow_http(self.allow_http);
        }
        let client: Arc<dyn ObjectStore> =
            Arc::new(builder.build().map_err(|e| Error::S3Config {
                bucket: bucket.to_string(),
                message: e.to_string(),
            })?);
        clients.insert(bucket.to_string(), client.clone());
        Ok(client)
    }

    /// Makes `bucket` readable by DataFusion in `ctx` (as `s3://bucket/...`).
    pub fn register(&self, ctx: &SessionContext, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let store = self.store(bucket)?;
        let url = ObjectStoreUrl::parse(format!("s3://{bucket}"))
            .map_err(Error::engine(format!("bucket name `{bucket}`")))?;
        ctx.register_object_store(url.as_ref(), store.clone());
        Ok(store)
    }
}

/// An S3 failure as one line that says what to do: a missing bucket, denied access, an
/// unreachable endpoint, or the store's own message.
pub fn explain(bucket: &str, e: &object_store::Error) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("NoSuchBucket") {
        return format!(
            "bucket `{bucket}` does not exist; create it or fix the URI (and check AWS_REGION / AWS_ENDPOINT_URL)"
        );
    }
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => format!(
            "access denied to bucket `{bucket}`; check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the role) and the bucket policy ({})",
            first_line(&chain)
        ),
        _ if chain.contains("AccessDenied") || chain.contains("InvalidAccessKeyId") => format!(
            "access denied to bucket `{bucket}`; check the AWS credentials and the bucket policy ({})",
            first_line(&chain)
        ),
        _ if chain.contains("error sending request") || chain.contains("onnection refused") => {
            format!(
                "cannot reach S3 for bucket `{bucket}`; check AWS_ENDPOINT_URL and the network ({})",
                first_line(&chain)
            )
        }
        _ => first_line(&chain),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// Joins key segments with `/`, skipping empty ones (an empty target prefix).
pub fn join_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}
