//! Azure credentials for ARM, from `azure_identity`'s credential types in the order
//! Azure's own tools try them: an environment service principal, workload identity,
//! the Azure CLI's login, then managed identity. The first that yields a token is used
//! from then on; tokens are reused until five minutes before they expire.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};
use time::OffsetDateTime;

use super::arm::TokenSource;
use crate::{ErrorKind, ProviderError};

/// The scope of an Azure Resource Manager token.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

pub struct AzureTokens {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    state: tokio::sync::Mutex<Option<usize>>,
    cached: Mutex<Option<(String, OffsetDateTime)>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AzureTokens {
    /// The chain for this environment. Fails only when no credential type can even be
    /// set up (the Azure CLI one always can).
    pub fn from_environment() -> Result<AzureTokens, ProviderError> {
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        let setup = |e: azure_core::Error, what: &str| {
            ProviderError::new(ErrorKind::Auth, format!("Azure credentials ({what}): {e}"))
        };
        if let (Some(tenant), Some(client), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) {
            let c = ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)
                .map_err(|e| setup(e, "AZURE_CLIENT_SECRET service principal"))?;
            sources.push(("environment service principal", c));
        }
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let c =
                WorkloadIdentityCredential::new(None).map_err(|e| setup(e, "workload identity"))?;
            sources.push(("workload identity", c));
        }
        if let Ok(c) = AzureCliCredential::new(None) {
            sources.push(("Azure CLI (az login)", c));
        }
        if let Ok(c) = ManagedIdentityCredential::new(None) {
            sources.push(("managed identity", c));
        }
        if sources.is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Auth,
                "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and \
                 AZURE_CLIENT_SECRET, use workload or managed identity, or run `az login`",
            ));
        }
        Ok(AzureTokens {
            sources,
            state: tokio::sync::Mutex::new(None),
            cached: Mutex::new(None),
        })
    }
}

#[async_trait]
impl TokenSource for AzureTokens {
    async fn token(&self) -> Result<String, ProviderError> {
        if let Some((t, exp)) = self.cached.lock().unwrap().clone() {
            if exp - OffsetDateTime::now_utc() > time::Duration::minutes(5) {
                return Ok(t);
            }
        }
        let mut chosen = self.state.lock().await;
        let order: Vec<usize> = match *chosen {
            Some(i) => vec![i],
            None => (0..self.sources.len()).collect(),
        };
        let mut failures = Vec::new();
        for i in order {
            let (name, cred) = &self.sources[i];
            match cred.get_token(&[ARM_SCOPE], None).await {
                Ok(tok) => {
                    *chosen = Some(i);
                    let t = tok.token.secret().to_string();
                    *self.cached.lock().unwrap() = Some((t.clone(), tok.expires_on));
                    return Ok(t);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(ProviderError::new(
            ErrorKind::Auth,
            format!(
                "no Azure credential gave a token for Azure Resource Manager ({}); set \
                 AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, use workload or managed \
                 identity, or run `az login`",
                failures.join("; ")
            ),
        ))
    }
}
