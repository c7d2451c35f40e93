//! SDK configuration: credentials, region, endpoint, retries and timeouts.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::timeout::TimeoutConfig;
use aws_sdk_eks::config::Region;
use aws_sdk_eks::Client;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use kup_engine::model::ProviderSpec;

/// Attempts per request (the first try plus retries) for throttling, 5xx and connection
/// failures, with the SDK's standard mode: exponential backoff with full jitter.
pub(crate) const MAX_ATTEMPTS: u32 = 5;
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One HTTP attempt unless the provider block sets `request_timeout`; EKS answers every
/// call we make in well under a second.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole call including retries and backoff (at least every attempt's full time).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

pub(crate) fn timeout_config(attempt: Option<Duration>) -> TimeoutConfig {
    let attempt = attempt.unwrap_or(ATTEMPT_TIMEOUT);
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(OPERATION_TIMEOUT.max(attempt * MAX_ATTEMPTS))
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
        .timeout_config(timeout_config(spec.request_timeout));
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
    let sdk = loader.load().await;
    // The SDK picks its default HTTPS client only when a client is built; to wrap it,
    // build the same one (hyper 1 with rustls on aws-lc) now.
    let default_client = || {
        use aws_smithy_http_client::tls;
        Some(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
        )
    };
    match (
        spec.requests_per_second,
        sdk.http_client().or_else(default_client),
    ) {
        (Some(per_second), Some(inner)) => {
            let limited = RateLimited {
                inner,
                limit: std::sync::Arc::new(crate::rate::RateLimit::new(per_second)),
            };
            sdk.into_builder()
                .http_client(SharedHttpClient::new(limited))
                .build()
        }
        _ => sdk,
    }
}

/// The SDK's HTTP client with every request (retries included) waiting its turn under the
/// provider block's `requests_per_second`.
#[derive(Debug, Clone)]
struct RateLimited {
    inner: SharedHttpClient,
    limit: std::sync::Arc<crate::rate::RateLimit>,
}

impl HttpClient for RateLimited {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limit: self.limit.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
    limit: std::sync::Arc<crate::rate::RateLimit>,
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let limit = self.limit.clone();
        HttpConnectorFuture::new(async move {
            limit.acquire().await;
            inner.call(request).await
        })
    }
}

/// An EKS client for one region, sharing the SDK configuration's HTTP client,
/// credentials cache, retry and timeout settings.
pub(crate) fn client(sdk: &SdkConfig, region: &str) -> Client {
    let conf = aws_sdk_eks::config::Builder::from(sdk)
        .region(Region::new(region.to_string()))
        .build();
    Client::from_conf(conf)
}
