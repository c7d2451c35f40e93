//! kup's providers: the [`Provider`] trait's implementations, each behind a cargo feature.
//!
//! `build` turns a `provider` block into a provider object; kinds this build was compiled
//! without are reported with the feature that enables them.

use std::sync::Arc;

pub use kup_engine::provider::*;

use kup_engine::model::ProviderSpec;

#[cfg(feature = "aks")]
pub mod aks;
#[cfg(feature = "eks")]
pub mod eks;
#[cfg(feature = "gke")]
pub mod gke;
#[cfg(feature = "k3s")]
pub mod k3s;
pub mod kube;
#[cfg(feature = "kubeadm")]
pub mod kubeadm;
pub mod rate;
pub mod tls;

/// Every provider kind kup knows about, and the cargo feature that compiles it in.
const KNOWN_KINDS: &[(&str, &str)] = &[
    ("eks", "eks"),
    ("aks", "aks"),
    ("gke", "gke"),
    ("kubeadm", "kubeadm"),
    ("k3s", "k3s"),
    ("rke2", "k3s"),
];

/// Provider kinds compiled into this build.
pub fn compiled_kinds() -> &'static [&'static str] {
    &[
        #[cfg(feature = "eks")]
        "eks",
        #[cfg(feature = "aks")]
        "aks",
        #[cfg(feature = "gke")]
        "gke",
        #[cfg(feature = "k3s")]
        "k3s",
        #[cfg(feature = "k3s")]
        "rke2",
        #[cfg(feature = "kubeadm")]
        "kubeadm",
    ]
}

/// What a provider may need beyond its own block: the clusters that use it (K3s/RKE2 read
/// node-group selectors and channels from them) and the kubeconfigs an in-process simulator
/// wrote.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    pub clusters: Vec<kup_engine::model::ClusterSpec>,
    pub kubeconfigs: std::collections::BTreeMap<String, std::path::PathBuf>,
}

/// Build the provider for a `provider` block. `endpoint_override` is set when kup started
/// its simulator in-process (the provider then uses it and static dummy credentials).
pub async fn build(
    spec: &ProviderSpec,
    endpoint_override: Option<&str>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    build_with(spec, endpoint_override, &BuildContext::default()).await
}

/// [`build`] with the clusters and simulator kubeconfigs some providers need.
pub async fn build_with(
    spec: &ProviderSpec,
    endpoint_override: Option<&str>,
    ctx: &BuildContext,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let _ = ctx;
    match spec.kind.as_str() {
        #[cfg(feature = "eks")]
        "eks" => Ok(Arc::new(
            eks::EksProvider::new(spec, endpoint_override).await?,
        )),
        // `project` and `location` come from the provider block; a cluster block's `region`
        // is not used by GKE (see `gke` module docs).
        #[cfg(feature = "gke")]
        "gke" => Ok(Arc::new(
            gke::GkeProvider::new(spec, endpoint_override).await?,
        )),
        // `subscription_id` and `resource_group` come from the provider block.
        #[cfg(feature = "aks")]
        "aks" => Ok(Arc::new(
            aks::AksProvider::new(spec, endpoint_override).await?,
        )),
        // Node groups, channel and namespace come from the cluster blocks.
        #[cfg(feature = "k3s")]
        "k3s" | "rke2" => Ok(Arc::new(k3s::K3sProvider::new(
            spec,
            endpoint_override,
            &ctx.clusters,
            &ctx.kubeconfigs,
        )?)),
        // Hosts, SSH settings and node groups come from the cluster blocks.
        #[cfg(feature = "kubeadm")]
        "kubeadm" => Ok(Arc::new(kubeadm::KubeadmProvider::new(
            spec,
            &ctx.clusters,
        )?)),
        other => {
            let _ = endpoint_override;
            Err(not_compiled(other))
        }
    }
}

/// The error for `RemoveUpgradePlans` / `PrecheckHosts` on a provider that leaves no Plans
/// in clusters and reaches no hosts (the planner only asks providers whose policy says so).
#[allow(dead_code)]
fn no_upgrade_plans(kind: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Invalid,
        format!(
            "provider `{kind}` creates no upgrade Plans in clusters and reaches no hosts itself, so there is nothing to remove or pre-check"
        ),
    )
}

fn not_compiled(kind: &str) -> ProviderError {
    let have = match compiled_kinds() {
        [] => "none".to_string(),
        kinds => kinds.join(", "),
    };
    let message = match KNOWN_KINDS.iter().find(|(k, _)| *k == kind) {
        Some((_, feature)) => format!(
            "provider `{kind}` is not available in this build of kup (compiled providers: \
             {have}); rebuild with the `{feature}` cargo feature, e.g. \
             `cargo install kup --features {feature}`"
        ),
        None => {
            let known: Vec<&str> = KNOWN_KINDS.iter().map(|(k, _)| *k).collect();
            format!(
                "unknown provider `{kind}`: kup knows {} (compiled into this build: {have}; \
                 each other kind is enabled by the cargo feature of the same name)",
                known.join(", ")
            )
        }
    };
    ProviderError::new(ErrorKind::Other, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> ProviderSpec {
        ProviderSpec {
            requests_per_second: None,
            request_timeout: None,
            operation_timeout: None,
            tls: Default::default(),
            channel_server: None,
            versions: Vec::new(),
            kind: kind.into(),
            alias: None,
            region: Some("eu-west-1".into()),
            profile: None,
            project: None,
            location: None,
            endpoint: None,
            simulate: true,
            world: None,
            speed: None,
            poll_interval: None,
            origin: None,
            api_version: None,
            resource_group: None,
            subscription_id: None,
        }
    }

    #[tokio::test]
    async fn unknown_kind_lists_compiled_kinds() {
        let err = build(&spec("openstack"), None).await.err().unwrap();
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(
            err.message.contains("unknown provider `openstack`"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("compiled into this build"),
            "{}",
            err.message
        );
    }

    #[test]
    fn known_but_missing_kind_names_its_feature() {
        // Every known kind is in the default build; the message a build without one gives:
        let err = not_compiled("kubeadm");
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(
            err.message.contains("`kubeadm` cargo feature"),
            "{}",
            err.message
        );
    }

    #[cfg(feature = "eks")]
    #[tokio::test]
    async fn eks_builds_for_the_simulator() {
        assert!(compiled_kinds().contains(&"eks"));
        let p = build(&spec("eks"), Some("http://127.0.0.1:9"))
            .await
            .unwrap();
        assert_eq!(p.kind(), "eks");
    }

    #[cfg(feature = "gke")]
    #[tokio::test]
    async fn gke_builds_for_the_simulator() {
        assert!(compiled_kinds().contains(&"gke"));
        let mut s = spec("gke");
        s.project = Some("proj".into());
        s.location = Some("europe-west1".into());
        let p = build(&s, Some("http://127.0.0.1:9")).await.unwrap();
        assert_eq!(p.kind(), "gke");
        s.project = None;
        let err = build(&s, Some("http://127.0.0.1:9")).await.err().unwrap();
        assert!(err.message.contains("`project`"), "{}", err.message);
    }

    #[cfg(not(feature = "gke"))]
    #[tokio::test]
    async fn gke_missing_names_its_feature() {
        let err = build(&spec("gke"), None).await.err().unwrap();
        assert!(
            err.message.contains("`gke` cargo feature"),
            "{}",
            err.message
        );
    }

    #[cfg(not(feature = "eks"))]
    #[tokio::test]
    async fn eks_missing_names_its_feature() {
        let err = build(&spec("eks"), None).await.err().unwrap();
        assert!(
            err.message.contains("`eks` cargo feature"),
            "{}",
            err.message
        );
    }
}
