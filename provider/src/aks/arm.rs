//! A small typed client for the Azure Resource Manager REST API: JSON over reqwest, the
//! bearer token from a [`TokenSource`], `api-version` on every request, and ARM's error
//! shape (`{"error":{"code","message"}}`) turned into [`ProviderError`]s.
//!
//! Why not `azure_mgmt_containerservice`: its last release (0.10, 2023) speaks only
//! 2022–2023 *preview* api-versions, which Azure retires; see README's dependency notes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, IF_MATCH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{ErrorKind, ProviderError};

/// The public ARM endpoint.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";

/// Where bearer tokens for ARM come from (Azure credentials, or a fixed one for the sim).
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self) -> Result<String, ProviderError>;
}

/// A fixed token: what kup sends to its simulator.
pub struct FixedToken(pub String);

#[async_trait]
impl TokenSource for FixedToken {
    async fn token(&self) -> Result<String, ProviderError> {
        Ok(self.0.clone())
    }
}

/// One successful ARM answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct ArmResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl ArmResponse {
    /// The URL to follow a long-running operation, and whether it is a `Location` URL
    /// (followed by HTTP status: 202 running, 200/204 done) rather than an
    /// `Azure-AsyncOperation` status resource (ARM's documented order).
    pub fn operation_url(&self) -> Option<(String, bool)> {
        let header = |h: &str| {
            self.headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        header("azure-asyncoperation")
            .map(|u| (u, false))
            .or_else(|| header("location").map(|u| (u, true)))
    }
}

pub struct ArmClient {
    http: reqwest::Client,
    base: String,
    api_version: String,
    tokens: Arc<dyn TokenSource>,
    /// The provider block's `requests_per_second`, when it has one.
    limit: Option<Arc<crate::rate::RateLimit>>,
    /// One HTTP attempt's limit (the provider block's `request_timeout`).
    attempt_timeout: Duration,
}

/// ARM's own limit for a request, and kup's default for one attempt.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times one call waits out a 429 / 5xx (honouring `Retry-After`) before the
/// error reaches the executor's own retry.
const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` kup sleeps inside one call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl ArmClient {
    pub fn new(
        base: &str,
        api_version: &str,
        tokens: Arc<dyn TokenSource>,
        tls: &kup_engine::model::TlsSettings,
    ) -> Result<ArmClient, ProviderError> {
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        let http = crate::tls::reqwest_builder(builder, tls)?
            .build()
            .map_err(|e| ProviderError::new(ErrorKind::Other, format!("HTTP client: {e}")))?;
        Ok(ArmClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            api_version: api_version.to_string(),
            tokens,
            limit: None,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        })
    }

    /// Abandon (and retry) an attempt after `timeout` instead of the default.
    pub fn with_attempt_timeout(mut self, timeout: Option<Duration>) -> ArmClient {
        self.attempt_timeout = timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT);
        self
    }

    /// Send at most `per_second` requests per second (retries and polls included).
    pub fn with_rate_limit(mut self, per_second: Option<f64>) -> ArmClient {
        self.limit = per_second.map(|r| Arc::new(crate::rate::RateLimit::new(r)));
        self
    }

    /// `path` relative to the endpoint (starting with `/`), or an absolute URL ARM gave
    /// out (an operation URL, which already carries its api-version).
    fn url(&self, path: &str) -> String {
        let full = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        if full.contains("api-version=") {
            full
        } else if full.contains('?') {
            format!("{full}&api-version={}", self.api_version)
        } else {
            format!("{full}?api-version={}", self.api_version)
        }
    }

    /// An operation URL as kup journals it: relative to the endpoint when it points
    /// there, so a resumed run against a restarted simulator (another port) finds it.
    pub fn journal_form(&self, url: &str) -> String {
        url.strip_prefix(&self.base)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_string)
            .unwrap_or_else(|| url.to_string())
    }

    pub async fn get(&self, path: &str, what: &str) -> Result<ArmResponse, ProviderError> {
        self.send(Method::GET, path, None, None, what).await
    }

    pub async fn put(
        &self,
        path: &str,
        body: &Value,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<ArmResponse, ProviderError> {
        self.send(Method::PUT, path, Some(body), if_match, what)
            .await
    }

    pub async fn post(&self, path: &str, what: &str) -> Result<ArmResponse, ProviderError> {
        self.send(Method::POST, path, Some(&Value::Null), None, what)
            .await
    }

    pub async fn delete(&self, path: &str, what: &str) -> Result<ArmResponse, ProviderError> {
        self.send(Method::DELETE, path, None, None, what).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<ArmResponse, ProviderError> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limit) = &self.limit {
                limit.acquire().await;
            }
            let token = self.tokens.token().await?;
            kup_engine::redact::register(&token);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(self.attempt_timeout)
                .header(
                    AUTHORIZATION,
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        ProviderError::new(
                            ErrorKind::Auth,
                            "the Azure access token is not valid ASCII",
                        )
                    })?,
                );
            if let Some(etag) = if_match.filter(|e| !e.is_empty()) {
                let quoted = if etag.starts_with('"') {
                    etag.to_string()
                } else {
                    format!("\"{etag}\"")
                };
                req = req.header(IF_MATCH, quoted);
            }
            if let Some(b) = body.filter(|b| !b.is_null()) {
                req = req.json(b);
            } else if body.is_some() {
                req = req.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let why = crate::tls::error_chain(&e);
                    if crate::tls::is_certificate_error(&why) {
                        // Retrying cannot fix a certificate.
                        return Err(ProviderError::new(
                            ErrorKind::Other,
                            format!(
                                "{what}: the TLS certificate of Azure Resource Manager at {} is not trusted: {why}. Trust its CA with ca_file = \"/path/to/ca.pem\" in the provider block (or, never in production, insecure_skip_tls_verify = true)",
                                self.base
                            ),
                        ));
                    }
                    return Err(ProviderError::new(
                        ErrorKind::Transient,
                        format!(
                            "{what}: cannot reach Azure Resource Manager at {}: {why}",
                            self.base
                        ),
                    ));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.map_err(|e| {
                ProviderError::new(
                    ErrorKind::Transient,
                    format!("{what}: reading the answer: {e}"),
                )
            })?;
            let parsed: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(e) if status.is_success() => {
                        return Err(ProviderError::new(
                            ErrorKind::Transient,
                            format!(
                            "{what}: Azure answered {status} with a body that is not JSON ({e})"
                        ),
                        ))
                    }
                    Err(_) => Value::String(text.clone()),
                }
            };
            if status.is_success() {
                return Ok(ArmResponse {
                    status,
                    headers,
                    body: parsed,
                });
            }
            let err = arm_error(status, &parsed, what);
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if err.kind == ErrorKind::Transient && attempt < ATTEMPTS {
                let wait = retry_after
                    .unwrap_or(Duration::from_millis(500 * attempt as u64))
                    .min(MAX_RETRY_AFTER);
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(err);
        }
    }
}

/// ARM's `{"error":{"code","message"}}` as a [`ProviderError`] of the right kind.
pub fn arm_error(status: StatusCode, body: &Value, what: &str) -> ProviderError {
    let e = body.get("error").unwrap_or(body);
    let code = e
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| body.as_str().map(str::to_string))
        .unwrap_or_default();
    let lower = message.to_lowercase();
    let kind = match status.as_u16() {
        429 => ErrorKind::Transient,
        500..=599 => ErrorKind::Transient,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        // Another operation holds the cluster: wait for it, as with EKS's ResourceInUse.
        409 if code == "OperationNotAllowed" && lower.contains("in progress") => {
            ErrorKind::Conflict
        }
        _ => ErrorKind::Invalid,
    };
    let hint = match (status.as_u16(), code.as_str()) {
        (412, _) => {
            " (something changed it between kup's read and its write; run `kup plan` again)"
        }
        (401, _) | (403, _) => {
            " (check the Azure credentials: az login, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload or managed identity)"
        }
        _ => "",
    };
    let text = match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.clone(),
        (true, false) => message,
        (true, true) => format!("HTTP {status}"),
    };
    let err = ProviderError::new(kind, format!("{what}: {text}{hint}"));
    if code.is_empty() {
        err
    } else {
        err.with_code(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arm_errors_map_to_kinds() {
        let conflict = arm_error(
            StatusCode::CONFLICT,
            &json!({"error": {"code": "OperationNotAllowed", "message": "Operation is not allowed because there's an in progress upgrade managed cluster operation"}}),
            "AKS cluster `c`",
        );
        assert_eq!(conflict.kind, ErrorKind::Conflict);
        assert_eq!(conflict.code.as_deref(), Some("OperationNotAllowed"));
        let skip = arm_error(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": "OperationNotAllowed", "message": "Upgrading Kubernetes version 1.30.5 to 1.32.9 is not allowed."}}),
            "x",
        );
        assert_eq!(skip.kind, ErrorKind::Invalid);
        assert!(skip.message.contains("1.32.9 is not allowed"));
        let stale = arm_error(
            StatusCode::PRECONDITION_FAILED,
            &json!({"error": {"code": "PreconditionFailed", "message": "etag mismatch"}}),
            "x",
        );
        assert_eq!(stale.kind, ErrorKind::Invalid);
        assert!(
            stale.message.contains("between kup's read and its write"),
            "{}",
            stale.message
        );
        assert_eq!(
            arm_error(StatusCode::TOO_MANY_REQUESTS, &Value::Null, "x").kind,
            ErrorKind::Transient
        );
        assert_eq!(
            arm_error(
                StatusCode::NOT_FOUND,
                &json!({"error": {"code": "NotFound"}}),
                "x"
            )
            .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            arm_error(StatusCode::UNAUTHORIZED, &Value::Null, "x").kind,
            ErrorKind::Auth
        );
    }

    #[test]
    fn async_operation_header_wins_over_location() {
        let mut headers = HeaderMap::new();
        headers.insert("location", HeaderValue::from_static("http://h/loc"));
        let r = ArmResponse {
            status: StatusCode::ACCEPTED,
            headers: headers.clone(),
            body: Value::Null,
        };
        assert_eq!(r.operation_url(), Some(("http://h/loc".into(), true)));
        headers.insert(
            "azure-asyncoperation",
            HeaderValue::from_static("http://h/op"),
        );
        let r = ArmResponse {
            status: StatusCode::OK,
            headers,
            body: Value::Null,
        };
        assert_eq!(r.operation_url(), Some(("http://h/op".into(), false)));
    }

    #[test]
    fn urls_carry_the_api_version_and_journal_relative() {
        let c = ArmClient::new(
            "http://127.0.0.1:9/",
            "2026-10-01",
            Arc::new(FixedToken("t".into())),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            c.url("/subscriptions/s/x"),
            "http://127.0.0.1:9/subscriptions/s/x?api-version=2026-10-01"
        );
        assert_eq!(
            c.url("/a?ignore-pod-disruption-budget=true"),
            "http://127.0.0.1:9/a?ignore-pod-disruption-budget=true&api-version=2026-10-01"
        );
        let op = "http://127.0.0.1:9/subscriptions/s/providers/Microsoft.ContainerService/locations/l/operations/1?api-version=2026-10-01";
        assert_eq!(c.url(op), op);
        assert_eq!(
            c.journal_form(op),
            "/subscriptions/s/providers/Microsoft.ContainerService/locations/l/operations/1?api-version=2026-10-01"
        );
        assert_eq!(c.journal_form("https://other/x"), "https://other/x");
    }
}
