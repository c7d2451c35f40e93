//! Mapping AWS SDK errors to [`ProviderError`]s.
//!
//! The service's own error code and message text are kept verbatim (`code`, `message`) so
//! users see exactly what EKS said; the [`ErrorKind`] tells the executor what to do next.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_eks::config::http::HttpResponse;
use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::{ErrorKind, ProviderError};

/// What a failed call was about, for messages that name the resource.
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrCtx {
    pub cluster: String,
    pub region: String,
    /// The API endpoint the provider talks to, when known (for TLS errors).
    pub endpoint: Option<String>,
    pub node_group: Option<String>,
    pub addon: Option<String>,
}

impl ErrCtx {
    pub fn cluster(cluster: &str, region: &str) -> Self {
        ErrCtx {
            cluster: cluster.to_string(),
            region: region.to_string(),
            ..Default::default()
        }
    }
    pub fn node_group(mut self, name: &str) -> Self {
        self.node_group = Some(name.to_string());
        self
    }
    pub fn endpoint(mut self, url: String) -> Self {
        self.endpoint = Some(url);
        self
    }
    pub fn addon(mut self, name: &str) -> Self {
        self.addon = Some(name.to_string());
        self
    }

    /// "EKS cluster `prod` (node group `general`) in eu-west-1".
    pub fn describe(&self) -> String {
        let mut s = format!("EKS cluster `{}`", self.cluster);
        if let Some(ng) = &self.node_group {
            s.push_str(&format!(", node group `{ng}`"));
        }
        if let Some(a) = &self.addon {
            s.push_str(&format!(", add-on `{a}`"));
        }
        s.push_str(&format!(" in region {}", self.region));
        s
    }
}

/// How to give kup AWS credentials; appended to every credentials failure.
pub(crate) const CREDENTIALS_HELP: &str = "configure AWS credentials for the eks provider: \
set AWS_PROFILE or `profile = \"NAME\"` in the provider block (run `aws sso login --profile NAME` \
for IAM Identity Center/SSO profiles), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
(plus AWS_SESSION_TOKEN for temporary credentials); to try kup without an AWS account, set \
`simulate = true` in the provider block";

/// Service error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "ServerException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ResourcePropagationDelayException",
    "PriorRequestNotComplete",
];

/// Service error codes that mean the caller's identity was refused.
const AUTH_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "UnauthorizedOperation",
    "NotAuthorizedException",
];

/// The kind for a service error code and HTTP status.
pub(crate) fn kind_for_code(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match code {
        Some(c) if TRANSIENT_CODES.contains(&c) => return ErrorKind::Transient,
        Some(c) if AUTH_CODES.contains(&c) => return ErrorKind::Auth,
        Some("ResourceInUseException") => return ErrorKind::Conflict,
        // "The request is invalid given the state of the cluster": busy or transitioning,
        // like ResourceInUse; worth waiting for rather than giving up on.
        Some("InvalidStateException") => return ErrorKind::Conflict,
        Some(
            "InvalidParameterException"
            | "InvalidRequestException"
            | "ClientException"
            | "ValidationException"
            | "UnsupportedAvailabilityZoneException"
            | "ResourceLimitExceededException"
            | "ServiceQuotaExceededException"
            | "BadRequestException",
        ) => return ErrorKind::Invalid,
        Some("ResourceNotFoundException" | "NotFoundException") => return ErrorKind::NotFound,
        _ => {}
    }
    match status {
        Some(429) => ErrorKind::Transient,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(401 | 403) => ErrorKind::Auth,
        Some(404) => ErrorKind::NotFound,
        Some(409) => ErrorKind::Conflict,
        Some(400) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

/// Does any error in `err`'s source chain say the credentials could not be loaded or used?
fn is_credentials_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("no credentials")
            || text.contains("credentials not loaded")
            || text.contains("failed to load credentials")
            || text.contains("signing failed")
            || text.contains("failed to sign")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// An error and its sources as one line ("a: b: c"), skipping repeats, without the Debug
/// dumps of HTTP responses that `DisplayErrorContext` appends.
pub(crate) use crate::tls::error_chain as chain_text;

/// Convert any EKS operation's `SdkError` into a [`ProviderError`].
pub(crate) fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, ctx: &ErrCtx) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) if se.raw().status().is_success() => {
            // A success status with a body the SDK could not read (a proxy's HTML page,
            // say): the request may have been carried out, and asking again is safe —
            // reads are reads, and a mutation resent with its clientRequestToken is
            // answered with the first result.
            let status = se.raw().status().as_u16();
            ProviderError::new(
                ErrorKind::Transient,
                format!(
                    "EKS answered HTTP {status} for {} with a body that is not its JSON: {}",
                    ctx.describe(),
                    chain_text(&err)
                ),
            )
            .with_code(format!("HTTP {status}"))
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let e = se.err();
            let code = e.code().map(str::to_string);
            let kind = kind_for_code(code.as_deref(), Some(status));
            let text = e
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} (HTTP {status})", DisplayErrorContext(e)));
            let message = match kind {
                ErrorKind::NotFound => format!("{text} [{}]", ctx.describe()),
                ErrorKind::Auth => format!("{text} [{}]: {CREDENTIALS_HELP}", ctx.describe()),
                _ => text,
            };
            ProviderError {
                kind,
                code: code.or_else(|| Some(format!("HTTP {status}"))),
                message,
            }
        }
        SdkError::TimeoutError(_) => ProviderError::new(
            ErrorKind::Transient,
            format!(
                "EKS request timed out for {}: {}",
                ctx.describe(),
                chain_text(&err)
            ),
        )
        .with_code("Timeout"),
        SdkError::DispatchFailure(df) => {
            if is_credentials_failure(&err) {
                return auth_error(&err, ctx);
            }
            let why = chain_text(&err);
            if crate::tls::is_certificate_error(&why) {
                // Retrying cannot fix a certificate.
                return ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "the TLS certificate of the EKS endpoint {} is not trusted ({}): {why}. Trust its CA with ca_file = \"/path/to/ca.pem\" in the provider block",
                        ctx.endpoint.as_deref().unwrap_or("(the region's)"),
                        ctx.describe()
                    ),
                )
                .with_code("TlsCertificate");
            }
            let kind = if df.is_user() {
                ErrorKind::Other
            } else {
                // I/O, timeouts and other connection failures.
                ErrorKind::Transient
            };
            ProviderError::new(
                kind,
                format!(
                    "could not reach EKS for {}: {}",
                    ctx.describe(),
                    chain_text(&err)
                ),
            )
            .with_code(if df.is_timeout() {
                "Timeout"
            } else {
                "DispatchFailure"
            })
        }
        SdkError::ResponseError(re) => {
            let status = re.raw().status().as_u16();
            // 2xx: an answer cut short; the retry is safe for the reasons above.
            let kind = if status >= 500 || status == 429 || (200..300).contains(&status) {
                ErrorKind::Transient
            } else {
                ErrorKind::Other
            };
            ProviderError::new(
                kind,
                format!(
                    "unreadable EKS response (HTTP {status}) for {}: {}",
                    ctx.describe(),
                    chain_text(&err)
                ),
            )
            .with_code(format!("HTTP {status}"))
        }
        SdkError::ConstructionFailure(_) => {
            if is_credentials_failure(&err) {
                return auth_error(&err, ctx);
            }
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "could not build the EKS request for {}: {}",
                    ctx.describe(),
                    chain_text(&err)
                ),
            )
        }
        _ => {
            if is_credentials_failure(&err) {
                return auth_error(&err, ctx);
            }
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "EKS call failed for {}: {}",
                    ctx.describe(),
                    chain_text(&err)
                ),
            )
        }
    }
}

fn auth_error<E>(err: &SdkError<E, HttpResponse>, ctx: &ErrCtx) -> ProviderError
where
    E: StdError + 'static,
{
    ProviderError::new(
        ErrorKind::Auth,
        format!(
            "no usable AWS credentials for {} ({}); {CREDENTIALS_HELP}",
            ctx.describe(),
            chain_text(err)
        ),
    )
    .with_code("CredentialsError")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eks::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
    use aws_sdk_eks::operation::update_cluster_version::UpdateClusterVersionError;
    use aws_sdk_eks::types::error::{
        InvalidParameterException, ResourceInUseException, ResourceNotFoundException,
        ServerException,
    };
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn resp(status: u16) -> HttpResponse {
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn ctx() -> ErrCtx {
        ErrCtx::cluster("prod", "eu-west-1")
    }

    fn service<E>(e: E, status: u16) -> SdkError<E, HttpResponse> {
        SdkError::service_error(e, resp(status))
    }

    /// What the SDK's deserializer attaches to every service error.
    fn meta(code: &str, msg: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(msg).build()
    }

    fn generic(code: &str, msg: &str) -> UpdateClusterVersionError {
        UpdateClusterVersionError::generic(meta(code, msg))
    }

    #[test]
    fn resource_in_use_is_conflict_with_verbatim_text() {
        let msg = "Update already in progress";
        let e = UpdateClusterVersionError::ResourceInUseException(
            ResourceInUseException::builder()
                .message(msg)
                .meta(meta("ResourceInUseException", msg))
                .build(),
        );
        let p = map_sdk_error(service(e, 409), &ctx());
        assert_eq!(p.kind, ErrorKind::Conflict);
        assert_eq!(p.code.as_deref(), Some("ResourceInUseException"));
        assert_eq!(p.message, msg);
    }

    #[test]
    fn invalid_parameter_is_invalid_with_verbatim_text() {
        let msg = "Unsupported Kubernetes minor version update from 1.28 to 1.30";
        let e = UpdateClusterVersionError::InvalidParameterException(
            InvalidParameterException::builder()
                .message(msg)
                .meta(meta("InvalidParameterException", msg))
                .build(),
        );
        let p = map_sdk_error(service(e, 400), &ctx());
        assert_eq!(p.kind, ErrorKind::Invalid);
        assert_eq!(p.code.as_deref(), Some("InvalidParameterException"));
        assert_eq!(p.message, msg);
    }

    #[test]
    fn invalid_request_and_client_exception_are_invalid() {
        for code in ["InvalidRequestException", "ClientException"] {
            let p = map_sdk_error(service(generic(code, "nope"), 400), &ctx());
            assert_eq!(p.kind, ErrorKind::Invalid, "{code}");
            assert_eq!(p.code.as_deref(), Some(code));
            assert_eq!(p.message, "nope");
        }
    }

    #[test]
    fn not_found_names_cluster_node_group_and_region() {
        let e = DescribeClusterError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("No node group found for name: blue.")
                .meta(meta(
                    "ResourceNotFoundException",
                    "No node group found for name: blue.",
                ))
                .build(),
        );
        let p = map_sdk_error(service(e, 404), &ctx().node_group("blue"));
        assert_eq!(p.kind, ErrorKind::NotFound);
        assert_eq!(p.code.as_deref(), Some("ResourceNotFoundException"));
        assert!(p.message.starts_with("No node group found for name: blue."));
        assert!(p.message.contains("`prod`"), "{}", p.message);
        assert!(p.message.contains("`blue`"), "{}", p.message);
        assert!(p.message.contains("eu-west-1"), "{}", p.message);
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        let p = map_sdk_error(
            service(generic("ThrottlingException", "Rate exceeded"), 429),
            &ctx(),
        );
        assert_eq!(p.kind, ErrorKind::Transient);
        assert_eq!(p.message, "Rate exceeded");
        let e = UpdateClusterVersionError::ServerException(
            ServerException::builder()
                .message("boom")
                .meta(meta("ServerException", "boom"))
                .build(),
        );
        assert_eq!(
            map_sdk_error(service(e, 500), &ctx()).kind,
            ErrorKind::Transient
        );
        let p = map_sdk_error(
            service(generic("ServiceUnavailableException", "try later"), 503),
            &ctx(),
        );
        assert_eq!(p.kind, ErrorKind::Transient);
        // An unknown code with a 5xx status is still transient.
        let p = map_sdk_error(service(generic("Weird", "x"), 502), &ctx());
        assert_eq!(p.kind, ErrorKind::Transient);
    }

    #[test]
    fn an_unreadable_success_is_transient() {
        // What the SDK makes of a 200 whose body is not JSON: an unhandled service error.
        let p = map_sdk_error(service(generic("Unknown", "unexpected token"), 200), &ctx());
        assert_eq!(p.kind, ErrorKind::Transient);
        assert_eq!(p.code.as_deref(), Some("HTTP 200"));
        assert!(p.message.contains("not its JSON"), "{}", p.message);
        // A client error stays what it is.
        let p = map_sdk_error(service(generic("Weird", "x"), 400), &ctx());
        assert_ne!(p.kind, ErrorKind::Transient);
    }

    #[test]
    fn access_denied_is_auth() {
        let p = map_sdk_error(
            service(
                generic("AccessDeniedException", "User is not authorized"),
                403,
            ),
            &ctx(),
        );
        assert_eq!(p.kind, ErrorKind::Auth);
        assert!(p.message.starts_with("User is not authorized"));
        let p = map_sdk_error(
            service(
                generic(
                    "UnrecognizedClientException",
                    "The security token is invalid",
                ),
                403,
            ),
            &ctx(),
        );
        assert_eq!(p.kind, ErrorKind::Auth);
    }

    #[test]
    fn timeouts_and_connection_failures_are_transient() {
        let e: SdkError<UpdateClusterVersionError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        let p = map_sdk_error(e, &ctx());
        assert_eq!(p.kind, ErrorKind::Transient);
        let e: SdkError<UpdateClusterVersionError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert_eq!(map_sdk_error(e, &ctx()).kind, ErrorKind::Transient);
        let e: SdkError<UpdateClusterVersionError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into()));
        let p = map_sdk_error(e, &ctx());
        assert_eq!(p.kind, ErrorKind::Transient);
        assert_eq!(p.code.as_deref(), Some("Timeout"));
    }

    #[test]
    fn missing_credentials_are_auth_with_help() {
        let cred = CredentialsError::not_loaded("no providers in chain provided credentials");
        let e: SdkError<UpdateClusterVersionError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(cred), None));
        let p = map_sdk_error(e, &ctx());
        assert_eq!(p.kind, ErrorKind::Auth);
        assert!(p.message.contains("AWS_PROFILE"), "{}", p.message);
        assert!(p.message.contains("profile ="), "{}", p.message);
        assert!(p.message.contains("AWS_ACCESS_KEY_ID"), "{}", p.message);
        assert!(p.message.contains("sso"), "{}", p.message);
    }

    #[test]
    fn code_table() {
        assert_eq!(
            kind_for_code(Some("InvalidStateException"), Some(400)),
            ErrorKind::Conflict
        );
        assert_eq!(kind_for_code(None, Some(429)), ErrorKind::Transient);
        assert_eq!(kind_for_code(None, Some(404)), ErrorKind::NotFound);
        assert_eq!(kind_for_code(None, Some(418)), ErrorKind::Other);
        assert_eq!(
            kind_for_code(Some("ResourceLimitExceededException"), Some(400)),
            ErrorKind::Invalid
        );
    }
}
