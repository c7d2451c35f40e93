//! Bearer tokens for a GKE cluster's Kubernetes API: an OAuth 2.0 access token of the
//! Application Default Credentials with the `cloud-platform` scope, which is what
//! `gke-gcloud-auth-plugin` hands kubectl. google-cloud-auth caches and refreshes the
//! token itself; kup rebuilds its Kubernetes client with the current token every few
//! minutes (access tokens live about an hour).

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::AccessTokenCredentials;

use super::errors::CREDENTIALS_HELP;
use crate::kube::TokenSource;
use crate::{ErrorKind, ProviderError};

/// The OAuth scope GKE's Kubernetes API accepts.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Access tokens from Application Default Credentials.
pub struct GkeTokenSource {
    pub credentials: AccessTokenCredentials,
    /// For messages: which cluster the token is for.
    pub cluster: String,
}

#[async_trait]
impl TokenSource for GkeTokenSource {
    async fn token(&self) -> Result<String, ProviderError> {
        self.credentials
            .access_token()
            .await
            .map(|t| t.token)
            .map_err(|e| {
                ProviderError::new(
                    ErrorKind::Auth,
                    format!(
                        "cannot get a Google Cloud access token for the Kubernetes API of GKE \
                         cluster `{}`: {e}; {CREDENTIALS_HELP}",
                        self.cluster
                    ),
                )
                .with_code("CredentialsError")
            })
    }

    fn refresh_after(&self) -> Duration {
        Duration::from_secs(5 * 60)
    }
}
