//! The Kubernetes version-skew policy and provider overlays, as pure functions.
//!
//! Source: kubernetes/website `content/en/releases/version-skew-policy.md` (summarised in
//! shared/reference/kubernetes/version-skew.md):
//! - "`kubelet` must not be newer than `kube-apiserver`."
//! - "`kubelet` may be up to three minor versions older than `kube-apiserver` (`kubelet`
//!   < 1.25 may only be up to two minor versions older than `kube-apiserver`)."
//! - "require `kube-apiserver` to not skip minor versions when upgrading".
//!
//! The same page's "upgrade order" section still says two minors; `strict_skew` selects
//! that reading. Providers add their own rules (EKS's API prose requires node groups to
//! match before a control-plane upgrade) through [`ProviderPolicy`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::version::Minor;

/// Constraints a provider adds to the upstream policy, plus its timing estimates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderPolicy {
    /// The most minors a kubelet may trail the API server, when the provider is stricter
    /// than upstream (AKS's API says 2). `None` = upstream rule.
    pub max_kubelet_skew: Option<u32>,
    /// Node groups must be at the control plane's minor before the control plane moves.
    pub nodes_must_match_before_control_plane_upgrade: bool,
    /// The provider upgrades control planes by minor only (EKS): exact patch targets
    /// are satisfied by whatever patch the provider runs for that minor.
    pub control_plane_minor_only: bool,
    /// Add-ons must be moved to a version compatible with each new control-plane minor.
    pub addons_track_control_plane: bool,
    /// The provider adds replacement nodes before draining old ones (EKS managed node
    /// groups surge), so a rolling batch never needs room elsewhere.
    #[serde(default)]
    pub surges_before_drain: bool,
    /// The provider honours a rolling `max_surge` (EKS managed node groups do not).
    #[serde(default = "yes")]
    pub supports_max_surge: bool,
    /// The smallest `max_unavailable` the provider accepts (EKS: 1).
    #[serde(default)]
    pub min_max_unavailable: u32,
    /// The provider can clone a node group (CreateNodeGroup/DeleteNodeGroup), which
    /// kup-driven blue/green needs.
    #[serde(default)]
    pub supports_blue_green: bool,
    /// The provider has its own blue/green node-pool upgrade (GKE BLUE_GREEN), which
    /// `strategy = "blue_green"` uses unless the user sets `native = false`.
    #[serde(default)]
    pub native_blue_green: bool,
    /// The provider drains nodes by itself and takes drain limits per group (GKE's
    /// nodeDrainConfig): a group's `drain { timeout, grace_period }` is set there.
    #[serde(default)]
    pub drain_limits: bool,
    /// With `drain_limits`: the provider also takes a grace-period cap (GKE does; AKS
    /// has only the drain timeout).
    #[serde(default)]
    pub drain_grace_limit: bool,
    /// Node-group names are short and alphanumeric (AKS: at most 12 lowercase letters
    /// and digits), so blue/green colours are `NAMEv131` rather than `NAME-1-31`.
    #[serde(default)]
    pub compact_group_names: bool,
    /// The provider waits a configurable time after draining each node (AKS's
    /// nodeSoakDurationInMinutes), which a rolling group's `node_soak` sets.
    #[serde(default)]
    pub node_soak: bool,
    /// The provider upgrades in rounds (K3s/RKE2 system-upgrade-controller, kubeadm): for
    /// every minor the control-plane nodes go first, then every node group to the same
    /// exact release, before the next minor starts.
    #[serde(default)]
    pub rounds: bool,
    /// The provider leaves upgrade resources in the cluster (K3s/RKE2 Plans) that kup
    /// removes after the last round unless the cluster says `keep_plans = true`.
    #[serde(default)]
    pub upgrade_plans: bool,
    /// The provider reaches hosts itself (kubeadm over SSH): a gate step checks them all
    /// before the first change.
    #[serde(default)]
    pub host_prechecks: bool,
    /// Add-ons that come with the provider's releases and move with them (kubeadm's
    /// CoreDNS and kube-proxy, K3s's packaged components), said in the plan.
    #[serde(default)]
    pub bundled_addons: Option<String>,
    /// The longest `node_soak` the provider takes (AKS: 30 minutes).
    #[serde(default)]
    pub max_node_soak: Option<Duration>,
    /// The provider keeps drain timeouts and soaks in whole units of this many seconds
    /// (AKS: minutes); kup rounds up to it, so what it sends is what it reads back.
    #[serde(default)]
    pub duration_unit_secs: u64,
    pub control_plane_upgrade_estimate: Duration,
    /// Time to replace one batch of nodes.
    pub node_batch_estimate: Duration,
    pub addon_update_estimate: Duration,
    pub config_update_estimate: Duration,
}

impl Default for ProviderPolicy {
    fn default() -> Self {
        ProviderPolicy {
            max_kubelet_skew: None,
            nodes_must_match_before_control_plane_upgrade: false,
            control_plane_minor_only: false,
            addons_track_control_plane: false,
            surges_before_drain: false,
            supports_max_surge: true,
            min_max_unavailable: 0,
            supports_blue_green: false,
            native_blue_green: false,
            drain_limits: false,
            drain_grace_limit: false,
            compact_group_names: false,
            node_soak: false,
            rounds: false,
            upgrade_plans: false,
            host_prechecks: false,
            bundled_addons: None,
            max_node_soak: None,
            duration_unit_secs: 0,
            control_plane_upgrade_estimate: Duration::from_secs(10 * 60),
            node_batch_estimate: Duration::from_secs(5 * 60),
            addon_update_estimate: Duration::from_secs(60),
            config_update_estimate: Duration::from_secs(30),
        }
    }
}

fn yes() -> bool {
    true
}

/// The skew rules in force for one plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SkewPolicy {
    /// Use the stricter two-minor reading of the upstream page for every kubelet.
    pub strict_skew: bool,
    pub provider: ProviderPolicy,
}

impl SkewPolicy {
    pub fn upstream() -> Self {
        SkewPolicy {
            strict_skew: false,
            provider: ProviderPolicy::default(),
        }
    }

    pub fn for_provider(provider: ProviderPolicy) -> Self {
        SkewPolicy {
            strict_skew: false,
            provider,
        }
    }

    /// How many minors a kubelet at `kubelet` may trail the API server.
    pub fn max_kubelet_lag(&self, kubelet: Minor) -> u32 {
        let upstream = if self.strict_skew || kubelet < Minor::new(1, 25) {
            2
        } else {
            3
        };
        match self.provider.max_kubelet_skew {
            Some(p) => upstream.min(p),
            None => upstream,
        }
    }

    /// Is a kubelet at `kubelet` legal beside an API server at `apiserver`?
    pub fn kubelet_ok(&self, apiserver: Minor, kubelet: Minor) -> Result<(), SkewViolation> {
        if kubelet > apiserver {
            return Err(SkewViolation::KubeletNewer { apiserver, kubelet });
        }
        let lag = apiserver.distance_from(kubelet);
        let max = self.max_kubelet_lag(kubelet);
        if lag > max as i64 {
            return Err(SkewViolation::KubeletTooOld {
                apiserver,
                kubelet,
                max,
            });
        }
        Ok(())
    }

    /// May the control plane move `from → to` while kubelets run `kubelets`?
    pub fn control_plane_hop_ok(
        &self,
        from: Minor,
        to: Minor,
        kubelets: &[Minor],
    ) -> Result<(), SkewViolation> {
        if to.distance_from(from) != 1 {
            return Err(SkewViolation::SkipsMinor { from, to });
        }
        for &k in kubelets {
            if self.provider.nodes_must_match_before_control_plane_upgrade && k != from {
                return Err(SkewViolation::ProviderRequiresMatch {
                    control_plane: from,
                    kubelet: k,
                });
            }
            self.kubelet_ok(to, k)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkewViolation {
    #[error("kubelet {kubelet} would be newer than the API server {apiserver}; the skew policy says kubelet must not be newer than kube-apiserver")]
    KubeletNewer { apiserver: Minor, kubelet: Minor },
    #[error("kubelet {kubelet} would trail the API server {apiserver} by more than {max} minors, which the skew policy does not allow")]
    KubeletTooOld {
        apiserver: Minor,
        kubelet: Minor,
        max: u32,
    },
    #[error("the control plane cannot move from {from} to {to}: Kubernetes requires one minor at a time")]
    SkipsMinor { from: Minor, to: Minor },
    #[error("this provider requires node groups to match the control plane ({control_plane}) before it is upgraded, but a node group runs {kubelet}")]
    ProviderRequiresMatch {
        control_plane: Minor,
        kubelet: Minor,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minor: u32) -> Minor {
        Minor::new(1, minor)
    }

    /// Table from the upstream page: with kube-apiserver at N, kubelets at N..N-3 are
    /// supported (N..N-2 for kubelets older than 1.25), never N+1.
    #[test]
    fn upstream_kubelet_table() {
        let p = SkewPolicy::upstream();
        let cases: &[(u32, u32, bool)] = &[
            (30, 31, false), // newer than apiserver
            (30, 30, true),
            (30, 29, true),
            (30, 28, true),
            (30, 27, true), // three behind, kubelet >= 1.25
            (30, 26, false),
            (27, 25, true),
            (28, 25, true),  // 1.25 kubelet may trail by three
            (26, 24, true),  // 1.24 kubelet may trail by two
            (27, 24, false), // ...but not three
            (24, 22, true),
            (24, 21, false),
        ];
        for &(api, kubelet, ok) in cases {
            assert_eq!(
                p.kubelet_ok(m(api), m(kubelet)).is_ok(),
                ok,
                "apiserver 1.{api}, kubelet 1.{kubelet}"
            );
        }
    }

    #[test]
    fn strict_reading_allows_two() {
        let p = SkewPolicy {
            strict_skew: true,
            provider: ProviderPolicy::default(),
        };
        assert!(p.kubelet_ok(m(30), m(28)).is_ok());
        assert!(p.kubelet_ok(m(30), m(27)).is_err());
    }

    #[test]
    fn provider_overlay_narrows() {
        let p = SkewPolicy::for_provider(ProviderPolicy {
            max_kubelet_skew: Some(2),
            ..ProviderPolicy::default()
        });
        assert!(p.kubelet_ok(m(30), m(27)).is_err());
        assert!(p.kubelet_ok(m(30), m(28)).is_ok());
    }

    #[test]
    fn control_plane_hops() {
        let p = SkewPolicy::upstream();
        assert!(p
            .control_plane_hop_ok(m(28), m(29), &[m(28), m(26)])
            .is_ok());
        assert_eq!(
            p.control_plane_hop_ok(m(28), m(30), &[]),
            Err(SkewViolation::SkipsMinor {
                from: m(28),
                to: m(30)
            })
        );
        // A 1.26 kubelet cannot stay when the API server reaches 1.30.
        assert!(p.control_plane_hop_ok(m(29), m(30), &[m(26)]).is_err());
        let strict_eks = SkewPolicy::for_provider(ProviderPolicy {
            nodes_must_match_before_control_plane_upgrade: true,
            ..ProviderPolicy::default()
        });
        assert!(matches!(
            strict_eks.control_plane_hop_ok(m(28), m(29), &[m(27)]),
            Err(SkewViolation::ProviderRequiresMatch { .. })
        ));
        assert!(strict_eks
            .control_plane_hop_ok(m(28), m(29), &[m(28)])
            .is_ok());
    }
}
