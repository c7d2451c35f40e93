//! EKS bearer tokens, as `aws eks get-token` and aws-iam-authenticator make them: an STS
//! `GetCallerIdentity` URL presigned with SigV4 (query-string signature, signed header
//! `x-k8s-aws-id: <cluster name>`, 60 s expiry), base64url-encoded without padding and
//! prefixed with `k8s-aws-v1.`. The API server hands it to STS to learn who is calling.
//! EKS accepts a token for 15 minutes; [`EksTokenSource`] makes a new one every 10.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;

use super::errors::CREDENTIALS_HELP;
use crate::kube::TokenSource;
use crate::{ErrorKind, ProviderError};

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
const PRESIGN_EXPIRY: Duration = Duration::from_secs(60);

/// The STS host for a region (`sts.<region>.amazonaws.com`, `.amazonaws.com.cn` in China).
pub fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// The presigned STS URL for `cluster` signed at `time`.
pub fn presigned_url(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, String> {
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRY);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut req = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut req);
    Ok(req.uri().to_string())
}

/// `k8s-aws-v1.` + base64url-no-pad(presigned URL).
pub fn token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, String> {
    let url = presigned_url(credentials, region, cluster, time)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    ))
}

/// Tokens for one cluster from the provider's AWS credentials chain.
pub struct EksTokenSource {
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
    pub region: String,
    pub cluster: String,
}

#[async_trait]
impl TokenSource for EksTokenSource {
    async fn token(&self) -> Result<String, ProviderError> {
        let creds = self.credentials.provide_credentials().await.map_err(|e| {
            ProviderError::new(
                ErrorKind::Auth,
                format!(
                    "no AWS credentials to sign a Kubernetes token for EKS cluster `{}`: {e}; {CREDENTIALS_HELP}",
                    self.cluster
                ),
            )
        })?;
        token(&creds, &self.region, &self.cluster, SystemTime::now()).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "cannot sign a Kubernetes token for EKS cluster `{}`: {e}",
                    self.cluster
                ),
            )
        })
    }

    fn refresh_after(&self) -> Duration {
        Duration::from_secs(10 * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(tok: &str) -> String {
        let b64 = tok.strip_prefix(TOKEN_PREFIX).expect("prefix");
        assert!(
            !b64.contains('=') && !b64.contains('+') && !b64.contains('/'),
            "{b64}"
        );
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
        q.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn token_shape() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        // 2024-01-02T03:04:05Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645);
        let tok = token(&creds, "eu-west-1", "prod-eu", t).unwrap();
        assert!(tok.starts_with("k8s-aws-v1."), "{tok}");
        let url = decode(&tok);
        assert!(
            url.starts_with("https://sts.eu-west-1.amazonaws.com/?"),
            "{url}"
        );
        let q = query(&url);
        assert_eq!(get(&q, "Action"), Some("GetCallerIdentity"));
        assert_eq!(get(&q, "Version"), Some("2011-06-15"));
        assert_eq!(get(&q, "X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(get(&q, "X-Amz-Expires"), Some("60"));
        assert_eq!(get(&q, "X-Amz-Date"), Some("20240102T030405Z"));
        assert_eq!(
            get(&q, "X-Amz-Credential"),
            Some("AKIDEXAMPLE%2F20240102%2Feu-west-1%2Fsts%2Faws4_request")
        );
        let signed = get(&q, "X-Amz-SignedHeaders").unwrap();
        assert_eq!(signed, "host%3Bx-k8s-aws-id");
        let sig = get(&q, "X-Amz-Signature").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(get(&q, "X-Amz-Security-Token").is_none());
        // Deterministic for fixed credentials and time; bound to the cluster name.
        assert_eq!(tok, token(&creds, "eu-west-1", "prod-eu", t).unwrap());
        assert_ne!(tok, token(&creds, "eu-west-1", "other", t).unwrap());

        let session = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("SESSION/TOKEN+1".into()),
            None,
            "test",
        );
        let url = decode(&token(&session, "cn-north-1", "c", t).unwrap());
        assert!(
            url.starts_with("https://sts.cn-north-1.amazonaws.com.cn/?"),
            "{url}"
        );
        let q = query(&url);
        assert_eq!(get(&q, "X-Amz-Security-Token"), Some("SESSION%2FTOKEN%2B1"));
    }
}
