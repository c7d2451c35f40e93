//! kup as a Terraform/OpenTofu provider: plugin protocol v6 over gRPC with the go-plugin
//! handshake (through the `tf-provider` crate), serving the `kup_cluster` resource and the
//! `kup_versions` data source. Every decision is kup's own: the resource's attributes are
//! written as a kup `cluster` block and loaded by kup's configuration loader, planned by
//! kup's planner and carried out by kup's executor with its journal.

mod cluster;
mod hcl;
mod mtls;
mod provider_config;
mod schema_json;
mod session;
mod versions;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::ValueEmpty;
use tf_provider::{map, Diagnostics, DynamicDataSource, DynamicResource, Provider};

pub use provider_config::{Configured, ProviderConfig};
pub use schema_json::{providers_schema_json, FILE as SCHEMA_FILE};

/// The provider's address in `required_providers` (`source = "kup/kup"`).
pub const SOURCE: &str = "registry.terraform.io/kup/kup";

/// What `configure` produced, shared with the resources (Terraform configures the
/// provider before it asks a resource anything but validation).
pub type Shared = Arc<RwLock<Option<Arc<Configured>>>>;

#[derive(Default)]
pub struct KupProvider {
    configured: Shared,
}

#[async_trait]
impl Provider for KupProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(provider_config::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ProviderConfig) -> Option<()> {
        if config.is_known() {
            let _ = Configured::new(&config, diags);
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: ProviderConfig,
    ) -> Option<()> {
        if let Some(c) = Configured::new(&config, diags) {
            *self.configured.write().unwrap() = Some(Arc::new(c));
        }
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "cluster" => cluster::ClusterResource { configured: self.configured.clone() },
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {
            "versions" => versions::VersionsDataSource { configured: self.configured.clone() },
        })
    }
}

/// Serve the provider to the Terraform (or OpenTofu) process that started this one.
pub fn main() -> anyhow::Result<()> {
    // tonic's TLS compiles rustls's `ring` backend in beside the `aws-lc-rs` one the cloud
    // clients use; with two backends rustls cannot pick one by itself, so the process
    // installs aws-lc-rs before any TLS is set up.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // tf-provider's server would verify this certificate itself (and refuse it, see
    // `mtls`); without it the server speaks plain gRPC on loopback behind our TLS.
    let client_pem = std::env::var("PLUGIN_CLIENT_CERT")
        .ok()
        .filter(|s| !s.is_empty());
    std::env::remove_var("PLUGIN_CLIENT_CERT");
    // tf-provider appends a backtrace to every diagnostic when backtraces are captured;
    // users should read kup's message, not the provider's stack (panics keep theirs).
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    // Ctrl-C reaches the whole process group; Terraform handles it and stops its providers
    // over the protocol, letting a running apply answer (go-plugin servers ignore SIGINT
    // for the same reason). A provider killed anyway leaves its journal to resume.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let inner = tf_provider::serve("kup", KupProvider::default());
            match client_pem {
                Some(pem) => mtls::serve(&pem, inner).await,
                // Terraform with TF_DISABLE_PLUGIN_TLS, or a debugging session.
                None => inner.await,
            }
        })
}
