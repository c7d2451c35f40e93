//! K3s and RKE2 clusters (world-file `k3s_cluster` blocks). There is no cloud API: these
//! clusters exist only as a simulated Kubernetes API (with the system-upgrade-controller
//! stand-in in `kube/suc.rs`). Node kubelet versions persist in the world file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::world::{self, OrderedMap, Workload, WorkloadFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    K3s,
    Rke2,
}

impl Dist {
    pub fn as_str(self) -> &'static str {
        match self {
            Dist::K3s => "k3s",
            Dist::Rke2 => "rke2",
        }
    }

    /// The upgrade image of this distribution (`rancher/k3s-upgrade`, `rancher/rke2-upgrade`).
    pub fn upgrade_image(self) -> &'static str {
        match self {
            Dist::K3s => "rancher/k3s-upgrade",
            Dist::Rke2 => "rancher/rke2-upgrade",
        }
    }

    /// True when `v` is a version of this distribution: `v1.29.8+k3s1` / `v1.29.8+rke2r1`.
    pub fn valid_version(self, v: &str) -> bool {
        let Some((core, build)) = v.split_once('+') else {
            return false;
        };
        let Some(core) = core.strip_prefix('v') else {
            return false;
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return false;
        }
        let n = match self {
            Dist::K3s => build.strip_prefix("k3s"),
            Dist::Rke2 => build.strip_prefix("rke2r"),
        };
        n.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    }
}

/// Kubernetes minor of `v1.29.8+k3s1` (29).
pub fn minor(v: &str) -> Option<u32> {
    v.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// Sort key of a version: (major, minor, patch, build number).
pub fn version_key(v: &str) -> (u32, u32, u32, u32) {
    let (core, build) = v.trim_start_matches('v').split_once('+').unwrap_or((v, ""));
    let mut it = core.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let b = build
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        b,
    )
}

#[derive(Debug, Clone)]
pub struct K3sNode {
    pub name: String,
    pub server: bool,
    /// Kubelet version (`v1.29.8+k3s1`).
    pub version: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct K3sCluster {
    pub name: String,
    pub distribution: Dist,
    pub nodes: Vec<K3sNode>,
    /// SUC namespace when the system-upgrade-controller is installed.
    pub suc: Option<String>,
    /// Channel name → version served by the simulated channel server.
    pub channels: BTreeMap<String, String>,
    pub workloads: Vec<Workload>,
    /// Objects, Helm releases and readiness failures staged in the Kubernetes API.
    pub staging: crate::stage::Staging,
    /// The cluster's Kubernetes API URL (set at start; not persisted).
    pub endpoint: Option<String>,
}

impl K3sCluster {
    /// The apiserver version: the oldest server node's version.
    pub fn version(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.server)
            .map(|n| n.version.clone())
            .min_by_key(|v| version_key(v))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K3sNodeFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SucFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelServerFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K3sClusterFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<u32>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub server: OrderedMap<K3sNodeFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub agent: OrderedMap<K3sNodeFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suc: Option<SucFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_server: Option<ChannelServerFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub workload: OrderedMap<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub helm_release: OrderedMap<crate::stage::HelmReleaseFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_failing: Option<Vec<String>>,
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub fn cluster_from_file(name: &str, f: K3sClusterFile, now: f64) -> Result<K3sCluster, String> {
    let distribution = match f.distribution.as_deref().unwrap_or("k3s") {
        "k3s" => Dist::K3s,
        "rke2" => Dist::Rke2,
        other => {
            return Err(format!(
                "distribution must be \"k3s\" or \"rke2\", got {other:?}"
            ))
        }
    };
    let check_version = |ctx: &str, v: &str| -> Result<(), String> {
        if distribution.valid_version(v) {
            Ok(())
        } else {
            let eg = match distribution {
                Dist::K3s => "v1.29.8+k3s1",
                Dist::Rke2 => "v1.29.8+rke2r1",
            };
            Err(format!(
                "{ctx}version {v:?} is not a {} version (e.g. {eg:?})",
                distribution.as_str()
            ))
        }
    };
    check_version("", &f.version)?;
    if f.servers.is_some() && !f.server.is_empty() {
        return Err("use either `server \"NAME\" {}` blocks or `servers = N`, not both".into());
    }
    if f.agents.is_some() && !f.agent.is_empty() {
        return Err("use either `agent \"NAME\" {}` blocks or `agents = N`, not both".into());
    }
    let default_server = f.servers.is_none() && f.server.is_empty();
    let mut nodes: Vec<K3sNode> = Vec::new();
    let mut add = |n: &str, server: bool, nf: K3sNodeFile| -> Result<(), String> {
        let role = if server { "server" } else { "agent" };
        if !dns_subdomain(n) {
            return Err(format!(
                "{role} \"{n}\": node names must be DNS subdomains (lowercase letters, digits, -, .)"
            ));
        }
        if nodes.iter().any(|x| x.name == n) {
            return Err(format!("{role} \"{n}\": duplicate node name"));
        }
        let version = nf.version.unwrap_or_else(|| f.version.clone());
        check_version(&format!("{role} \"{n}\": "), &version)?;
        nodes.push(K3sNode {
            name: n.to_string(),
            server,
            version,
            labels: nf.labels.unwrap_or_default(),
        });
        Ok(())
    };
    match f.servers {
        Some(c) => {
            for i in 1..=c {
                add(&format!("{name}-server-{i}"), true, K3sNodeFile::default())?;
            }
        }
        None => {
            for (n, nf) in f.server.0 {
                add(&n, true, nf)?;
            }
        }
    }
    match f.agents {
        Some(c) => {
            for i in 1..=c {
                add(&format!("{name}-agent-{i}"), false, K3sNodeFile::default())?;
            }
        }
        None => {
            for (n, nf) in f.agent.0 {
                add(&n, false, nf)?;
            }
        }
    }
    if default_server {
        add(&format!("{name}-server-1"), true, K3sNodeFile::default())?;
    }

    if !nodes.iter().any(|n| n.server) {
        return Err("a cluster needs at least one server node".into());
    }
    let suc = match f.suc {
        Some(s) if s.installed.unwrap_or(true) => {
            let ns = s.namespace.unwrap_or_else(|| "system-upgrade".into());
            if !dns_subdomain(&ns) || ns.contains('.') {
                return Err(format!("suc: namespace {ns:?} is not a DNS label"));
            }
            Some(ns)
        }
        _ => None,
    };
    let channels = f
        .channel_server
        .and_then(|c| c.channels)
        .unwrap_or_default();
    for (c, v) in &channels {
        check_version(&format!("channel_server: channel {c:?}: "), v)?;
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for (wname, wf) in f.workload.0 {
        let ctx = format!("workload \"{wname}\"");
        let w = world::workload_from_file(&wname, wf, &|_| false)
            .map_err(|e| format!("{ctx}: {e} (K3s/RKE2 clusters have no node groups)"))?;
        if workloads
            .iter()
            .any(|x| x.name == w.name && x.namespace == w.namespace)
        {
            return Err(format!("{ctx}: duplicate workload name in the namespace"));
        }
        workloads.push(w);
    }
    let staging = crate::stage::from_file(
        f.objects,
        f.helm_release,
        f.readyz_failing,
        suc.is_some(),
        now,
    )?;
    Ok(K3sCluster {
        name: name.to_string(),
        distribution,
        nodes,
        suc,
        channels,
        workloads,
        staging,
        endpoint: None,
    })
}

pub fn cluster_to_file(k: &K3sCluster) -> K3sClusterFile {
    let (objects, helm_release, readyz_failing) = crate::stage::to_file(&k.staging);
    let node = |n: &K3sNode| {
        (
            n.name.clone(),
            K3sNodeFile {
                version: Some(n.version.clone()),
                labels: (!n.labels.is_empty()).then(|| n.labels.clone()),
            },
        )
    };
    K3sClusterFile {
        distribution: Some(k.distribution.as_str().into()),
        version: k.version(),
        servers: None,
        agents: None,
        server: OrderedMap(k.nodes.iter().filter(|n| n.server).map(node).collect()),
        agent: OrderedMap(k.nodes.iter().filter(|n| !n.server).map(node).collect()),
        suc: Some(match &k.suc {
            Some(ns) => SucFile {
                installed: Some(true),
                namespace: Some(ns.clone()),
            },
            None => SucFile {
                installed: Some(false),
                namespace: None,
            },
        }),
        channel_server: (!k.channels.is_empty()).then(|| ChannelServerFile {
            channels: Some(k.channels.clone()),
        }),
        objects,
        helm_release,
        readyz_failing,
        workload: OrderedMap(
            k.workloads
                .iter()
                .map(|w| (w.name.clone(), world::workload_to_file(w)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(Dist::K3s.valid_version("v1.29.8+k3s1"));
        assert!(!Dist::K3s.valid_version("v1.29.8+rke2r1"));
        assert!(Dist::Rke2.valid_version("v1.29.8+rke2r1"));
        assert!(!Dist::Rke2.valid_version("1.29.8"));
        assert!(version_key("v1.30.5+k3s1") > version_key("v1.29.8+k3s2"));
        assert!(version_key("v1.30.5+k3s2") > version_key("v1.30.5+k3s1"));
        assert_eq!(minor("v1.30.5+rke2r1"), Some(30));
    }
}
