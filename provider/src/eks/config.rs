//! SDK configuration: credentials, region, endpoint, retries and timeouts.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::timeout::TimeoutConfig;
use aws_sdk_eks::config::Region;
use aws_sdk_eks::Client;
use kup_engine::model::ProviderSpec;

/// Attempts per request (the first try plus retries) for throttling, 5xx and connection
/// failures, with the SDK's standard mode: exponential backoff with full jitter.
pub(crate) const MAX_ATTEMPTS: u32 = 5;
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One HTTP attempt; EKS answers every call we make in well under a second.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole call including retries and backoff.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

pub(crate) fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Load the shared SDK configuration. With `simulated`, static dummy credentials are used
/// so no AWS account is needed; otherwise the default credential chain (env, profile,
/// SSO, web identity, ECS, IMDS) is used and never replaced by dummy credentials.
pub(crate) async fn load(
    spec: &ProviderSpec,
    endpoint: Option<&str>,
    simulated: bool,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(region) = &spec.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &spec.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if simulated {
        loader = loader.credentials_provider(Credentials::new(
            "kup-sim",
            "kup-sim",
            None,
            None,
            "kup-simulator",
        ));
    }
    loader.load().await
}

/// An EKS client for one region, sharing the SDK configuration's HTTP client,
/// credentials cache, retry and timeout settings.
pub(crate) fn client(sdk: &SdkConfig, region: &str) -> Client {
    let conf = aws_sdk_eks::config::Builder::from(sdk)
        .region(Region::new(region.to_string()))
        .build();
    Client::from_conf(conf)
}
