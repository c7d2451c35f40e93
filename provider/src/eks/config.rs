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
) -> Result<SdkConfig, kup_engine::provider::ProviderError> {
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
    // The SDK picks its default HTTPS client only when a client is built; to wrap it or
    // to trust `ca_file` too, build the same one (hyper 1 with rustls on aws-lc) now.
    let https_client = |ca: Option<&[u8]>| {
        use aws_smithy_http_client::tls;
        let mut context = tls::TlsContext::builder();
        if let Some(pem) = ca {
            context = context.with_trust_store(
                tls::TrustStore::empty()
                    .with_native_roots(true)
                    .with_pem_certificate(pem.to_vec()),
            );
        }
        let context = context.build().map_err(|e| {
            kup_engine::provider::ProviderError::new(
                kup_engine::provider::ErrorKind::Other,
                format!("eks provider: ca_file: {e}"),
            )
        })?;
        Ok::<_, kup_engine::provider::ProviderError>(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(context)
                .build_https(),
        )
    };
    if spec.tls.insecure_skip_tls_verify {
        // The SDK's own HTTPS client always verifies; this one is built on reqwest.
        loader = loader.http_client(SharedHttpClient::new(Unverified::new(&spec.tls)?));
    } else if let Some(pem) = crate::tls::ca_pem(&spec.tls)? {
        loader = loader.http_client(https_client(Some(&pem))?);
    }
    let sdk = loader.load().await;
    let client = match sdk.http_client() {
        Some(c) => Some(c),
        None => Some(https_client(None)?),
    };
    Ok(match (spec.requests_per_second, client) {
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
    })
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

/// An HTTP client for the SDK that does not verify the endpoint's certificate
/// (`insecure_skip_tls_verify = true`; every plan warns).
#[derive(Debug, Clone)]
struct Unverified {
    http: reqwest::Client,
}

impl Unverified {
    fn new(
        tls: &kup_engine::model::TlsSettings,
    ) -> Result<Unverified, kup_engine::provider::ProviderError> {
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT);
        let http = crate::tls::reqwest_builder(builder, tls)?
            .build()
            .map_err(|e| {
                kup_engine::provider::ProviderError::new(
                    kup_engine::provider::ErrorKind::Other,
                    format!("eks provider: HTTP client: {e}"),
                )
            })?;
        Ok(Unverified { http })
    }
}

impl HttpClient for Unverified {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Unverified {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let http = self.http.clone();
        HttpConnectorFuture::new(async move {
            let io = |e: reqwest::Error| {
                if e.is_timeout() {
                    ConnectorError::timeout(e.into())
                } else {
                    ConnectorError::io(e.into())
                }
            };
            let method = reqwest::Method::from_bytes(request.method().as_bytes())
                .map_err(|e| ConnectorError::user(e.into()))?;
            let mut req = http.request(method, request.uri());
            for (k, v) in request.headers() {
                req = req.header(k, v);
            }
            // EKS requests are small JSON documents, always in memory.
            let body = request.body().bytes().unwrap_or_default().to_vec();
            let resp = req.body(body).send().await.map_err(io)?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(io)?;
            let mut out = HttpResponse::new(
                status
                    .try_into()
                    .map_err(|e: aws_smithy_runtime_api::http::HttpError| {
                        ConnectorError::other(e.into(), None)
                    })?,
                aws_smithy_types::body::SdkBody::from(bytes.to_vec()),
            );
            for (k, v) in &headers {
                if let Ok(v) = v.to_str() {
                    out.headers_mut()
                        .append(k.as_str().to_string(), v.to_string());
                }
            }
            Ok(out)
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
