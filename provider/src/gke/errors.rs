//! Mapping `google-cloud-container-v1` errors to [`ProviderError`]s.
//!
//! Google's own status name (`FAILED_PRECONDITION`, ...) becomes the error's `code` and
//! its message text is kept verbatim; the [`ErrorKind`] tells the executor what to do next.

use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::error::Error;

use crate::{ErrorKind, ProviderError};

/// What a failed call was about, for messages that name the resource.
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrCtx {
    pub project: String,
    pub location: String,
    pub cluster: String,
    pub node_pool: Option<String>,
}

impl ErrCtx {
    pub fn new(project: &str, location: &str, cluster: &str) -> Self {
        ErrCtx {
            project: project.to_string(),
            location: location.to_string(),
            cluster: cluster.to_string(),
            node_pool: None,
        }
    }
    pub fn node_pool(mut self, name: &str) -> Self {
        self.node_pool = Some(name.to_string());
        self
    }

    /// "GKE cluster `prod` (node pool `default`) in project `p`, location `europe-west1`".
    pub fn describe(&self) -> String {
        let mut s = format!("GKE cluster `{}`", self.cluster);
        if let Some(np) = &self.node_pool {
            s.push_str(&format!(", node pool `{np}`"));
        }
        s.push_str(&format!(
            " in project `{}`, location `{}`",
            self.project, self.location
        ));
        s
    }
}

/// How to give kup Google Cloud credentials; appended to every credentials failure.
pub(crate) const CREDENTIALS_HELP: &str = "give kup Google Cloud Application Default \
Credentials: run `gcloud auth application-default login`, or export \
GOOGLE_APPLICATION_CREDENTIALS=/path/to/service-account.json, or run on a machine whose \
metadata server provides a service account; the identity needs the Kubernetes Engine \
Cluster Admin role (roles/container.clusterAdmin) on the project. To try kup without a \
project, set `simulate = true` in the provider block";

/// Does a FAILED_PRECONDITION text say another operation holds the cluster?
/// GKE says e.g. "Cluster is running incompatible operation operation-123" or
/// "Operation operation-123 is currently upgrading cluster prod".
pub(crate) fn is_busy_text(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("incompatible operation")
        || m.contains("is currently")
        || m.contains("in progress")
        || m.contains("operation-")
        || m.contains("another operation")
}

/// The kind for a Google status code (when the service sent one) and HTTP status.
pub(crate) fn kind_for(code: Option<Code>, http: Option<u16>, message: &str) -> ErrorKind {
    if let Some(code) = code {
        match code {
            Code::ResourceExhausted
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal => return ErrorKind::Transient,
            // A stale etag: the resource changed since kup read it. Retrying would
            // overwrite that change, so it is a stale plan, not a conflict to wait out.
            Code::Aborted => return ErrorKind::Invalid,
            Code::FailedPrecondition => {
                return if is_busy_text(message) {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::Invalid
                }
            }
            Code::InvalidArgument | Code::OutOfRange | Code::Unimplemented => {
                return ErrorKind::Invalid
            }
            // A node pool of that name exists; waiting will not change that.
            Code::AlreadyExists => return ErrorKind::Invalid,
            Code::NotFound => return ErrorKind::NotFound,
            Code::Unauthenticated | Code::PermissionDenied => return ErrorKind::Auth,
            // UNKNOWN and friends: decide from the HTTP status below.
            _ => {}
        }
    }
    match http {
        Some(429) => ErrorKind::Transient,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(401 | 403) => ErrorKind::Auth,
        Some(404) => ErrorKind::NotFound,
        Some(409) => ErrorKind::Conflict,
        Some(400) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

/// Convert any GKE call's error into a [`ProviderError`].
pub(crate) fn map_error(err: Error, ctx: &ErrCtx) -> ProviderError {
    if let Some(status) = err.status() {
        let http = err.http_status_code();
        let kind = kind_for(Some(status.code), http, &status.message);
        let text = if status.message.is_empty() {
            format!(
                "{}{}",
                status.code.name(),
                http.map(|h| format!(" (HTTP {h})")).unwrap_or_default()
            )
        } else {
            status.message.clone()
        };
        let message = match kind {
            ErrorKind::NotFound => format!("{text} [{}]", ctx.describe()),
            ErrorKind::Auth => format!("{text} [{}]: {CREDENTIALS_HELP}", ctx.describe()),
            _ => text,
        };
        return ProviderError {
            kind,
            code: Some(status.code.name().to_string()),
            message,
        };
    }
    if err.is_authentication() {
        return ProviderError::new(
            ErrorKind::Auth,
            format!(
                "no usable Google Cloud credentials for {} ({}); {CREDENTIALS_HELP}",
                ctx.describe(),
                crate::tls::error_chain(&err)
            ),
        )
        .with_code("CredentialsError");
    }
    if let Some(http) = err.http_status_code() {
        // An HTTP error without Google's error body (a proxy, a load balancer).
        let kind = kind_for(None, Some(http), "");
        let payload = err
            .http_payload()
            .map(|p| String::from_utf8_lossy(p).trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| crate::tls::error_chain(&err));
        let mut message = format!("GKE answered HTTP {http} for {}: {payload}", ctx.describe());
        if kind == ErrorKind::Auth {
            message.push_str(&format!("; {CREDENTIALS_HELP}"));
        }
        return ProviderError::new(kind, message).with_code(format!("HTTP {http}"));
    }
    if err.is_timeout() || err.is_io() || err.is_connect() || err.is_exhausted() {
        return ProviderError::new(
            ErrorKind::Transient,
            format!(
                "could not reach GKE for {}: {}",
                ctx.describe(),
                crate::tls::error_chain(&err)
            ),
        )
        .with_code(if err.is_timeout() {
            "Timeout"
        } else {
            "Unavailable"
        });
    }
    if err.is_deserialization() {
        // A success status with a body that is not the expected JSON: asking again is
        // safe (a lost mutation is found as its running operation, or as done).
        return ProviderError::new(
            ErrorKind::Transient,
            format!(
                "GKE's answer for {} could not be read: {}",
                ctx.describe(),
                crate::tls::error_chain(&err)
            ),
        )
        .with_code("Unreadable");
    }
    if err.is_transport() {
        return ProviderError::new(
            ErrorKind::Transient,
            format!(
                "could not reach GKE for {}: {}",
                ctx.describe(),
                crate::tls::error_chain(&err)
            ),
        )
        .with_code("Transport");
    }
    ProviderError::new(
        ErrorKind::Other,
        format!(
            "GKE call failed for {}: {}",
            ctx.describe(),
            crate::tls::error_chain(&err)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_gax::error::rpc::Status;
    use google_cloud_gax::error::CredentialsError;

    fn ctx() -> ErrCtx {
        ErrCtx::new("proj", "europe-west1", "prod").node_pool("default")
    }

    fn service(code: Code, http: u16, message: &str) -> Error {
        Error::service_with_http_metadata(
            Status::default().set_code(code).set_message(message),
            Some(http),
            None,
        )
    }

    #[test]
    fn google_codes_map_to_kinds_and_keep_the_text() {
        let cases = [
            (Code::ResourceExhausted, 429, "Quota exceeded", ErrorKind::Transient),
            (Code::Unavailable, 503, "try again", ErrorKind::Transient),
            (Code::Internal, 500, "oops", ErrorKind::Transient),
            (
                Code::FailedPrecondition,
                400,
                "Cluster is running incompatible operation operation-1234.",
                ErrorKind::Conflict,
            ),
            (
                Code::FailedPrecondition,
                400,
                "Operation operation-1 is currently upgrading cluster prod. Please wait and try again once it is done.",
                ErrorKind::Conflict,
            ),
            (
                Code::FailedPrecondition,
                400,
                "Node pool version cannot be newer than the master version.",
                ErrorKind::Invalid,
            ),
            (Code::Aborted, 409, "etag mismatch", ErrorKind::Invalid),
            (
                Code::InvalidArgument,
                400,
                "Master cannot be upgraded by more than one minor version",
                ErrorKind::Invalid,
            ),
            (Code::Unauthenticated, 401, "no", ErrorKind::Auth),
            (Code::PermissionDenied, 403, "denied", ErrorKind::Auth),
        ];
        for (code, http, text, kind) in cases {
            let e = map_error(service(code, http, text), &ctx());
            assert_eq!(e.kind, kind, "{code:?} {text}");
            assert_eq!(e.code.as_deref(), Some(code.name()));
            assert!(e.message.starts_with(text), "{}", e.message);
        }
        let e = map_error(service(Code::PermissionDenied, 403, "denied"), &ctx());
        assert!(e.message.contains("gcloud auth application-default login"));
        let e = map_error(service(Code::NotFound, 404, "Not found: cluster"), &ctx());
        assert_eq!(e.kind, ErrorKind::NotFound);
        for part in ["prod", "proj", "europe-west1", "default"] {
            assert!(e.message.contains(part), "{}", e.message);
        }
    }

    #[test]
    fn bare_http_errors_and_transport_failures() {
        let e = map_error(
            Error::http(502, Default::default(), "Bad Gateway".into()),
            &ctx(),
        );
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.code.as_deref(), Some("HTTP 502"));
        assert!(e.message.contains("Bad Gateway"));
        let e = map_error(Error::http(429, Default::default(), "".into()), &ctx());
        assert_eq!(e.kind, ErrorKind::Transient);
        let e = map_error(Error::io("connection reset"), &ctx());
        assert_eq!(e.kind, ErrorKind::Transient);
        let e = map_error(Error::deser("expected value at line 1 column 1"), &ctx());
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.code.as_deref(), Some("Unreadable"));
        let e = map_error(Error::timeout("deadline"), &ctx());
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.code.as_deref(), Some("Timeout"));
        let e = map_error(
            Error::authentication(CredentialsError::from_msg(false, "no ADC found")),
            &ctx(),
        );
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(
            e.message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{}",
            e.message
        );
        assert!(e.message.contains("no ADC found"), "{}", e.message);
    }
}
