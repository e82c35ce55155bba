//! Where the AWS services are: the standard environment by default, or explicit settings
//! (tests run many threads against one local server and must not set variables).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Endpoint, region and credentials; `None` fields come from the standard environment
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, the Lambda role, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Access key id and secret.
    pub credentials: Option<(String, String)>,
}

impl AwsSettings {
    /// Everything from the environment.
    pub fn from_env() -> AwsSettings {
        AwsSettings::default()
    }

    /// A local server that speaks the AWS protocols (moto), with dummy credentials.
    pub fn local(endpoint: &str, region: &str) -> AwsSettings {
        AwsSettings {
            endpoint: Some(endpoint.to_string()),
            region: Some(region.to_string()),
            credentials: Some(("testing".into(), "testing".into())),
        }
    }

    /// The SDK configuration these settings describe.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e);
        }
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some((id, secret)) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "skein-settings",
            ));
        }
        loader.load().await
    }

    /// The endpoint in effect: the explicit one, else `AWS_ENDPOINT_URL`.
    pub fn endpoint_in_effect(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|s| !s.is_empty())
        })
    }

    /// The region in effect: the explicit one, else `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub fn region_in_effect(&self) -> Option<String> {
        self.region.clone().or_else(|| {
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .filter(|s| !s.is_empty())
        })
    }
}

/// A readable message for an SDK error: the service's code and message when there is
/// one, else the error chain.
pub fn sdk_message<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => format!("{err}"),
            }
        }
        SdkError::DispatchFailure(d) => {
            format!("cannot reach the AWS endpoint ({d:?}); check AWS_ENDPOINT_URL / network")
        }
        SdkError::TimeoutError(_) => "the AWS request timed out".into(),
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}
