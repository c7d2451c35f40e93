//! kup configuration written from what runs (`kup generate`): a provider block and one
//! cluster block per cluster, pinned to exactly the versions and update settings the
//! provider reports, so the first `kup plan` on it has nothing to do. Pure: the caller
//! refreshes the clusters.

use std::fmt::Write as _;
use std::time::Duration;

use kup_engine::model::{ActualCluster, ActualNodeGroup, ProviderSpec, Unavailable};

/// The AKS mode label kup carries in an agent pool's labels.
const AKS_MODE_LABEL: &str = "kubernetes.azure.com/mode";

/// How kup reaches a cluster that has no cloud API (K3s, RKE2, kubeadm): the
/// `kubeconfig` and `context` attributes, and for kubeadm the control-plane hosts and
/// each node group's selector.
#[derive(Clone, Debug, Default)]
pub struct KubeAccess {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub control_plane_hosts: Vec<String>,
    pub node_selectors: std::collections::BTreeMap<String, String>,
}

/// The whole file: a header saying where it came from, the provider block, the clusters.
pub fn generated_config(
    spec: &ProviderSpec,
    clusters: &[ActualCluster],
    access: &KubeAccess,
    command: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `{command}`\n# from what runs now: every version and update setting is what the provider\n# reports, so `kup plan` has nothing to do. Change a `version` to upgrade."
    );
    s.push('\n');
    s.push_str(&provider_block(spec));
    for a in clusters {
        s.push('\n');
        s.push_str(&cluster_block(spec, a, access));
    }
    s
}

fn provider_block(spec: &ProviderSpec) -> String {
    let mut attrs: Vec<(&str, String)> = [
        ("alias", &spec.alias),
        ("region", &spec.region),
        ("profile", &spec.profile),
        ("project", &spec.project),
        ("location", &spec.location),
        ("subscription_id", &spec.subscription_id),
        ("resource_group", &spec.resource_group),
        ("endpoint", &spec.endpoint),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, quote(v))))
    .collect();
    if spec.simulate {
        attrs.push(("simulate", "true".into()));
    }
    if let Some(w) = &spec.world {
        attrs.push(("world", quote(w)));
    }
    let mut s = format!("provider {} {{\n", quote(&spec.kind));
    push_attrs(&mut s, "  ", &attrs);
    s.push_str("}\n");
    s
}

fn cluster_block(spec: &ProviderSpec, a: &ActualCluster, access: &KubeAccess) -> String {
    let label = label(&a.name);
    let mut attrs: Vec<(&str, String)> = Vec::new();
    // Named even when it is the only provider: generated files are often combined.
    attrs.push(("provider", quote(&spec.key())));
    if label != a.name {
        attrs.push(("name", quote(&a.name)));
    }
    if let Some(k) = &access.kubeconfig {
        attrs.push(("kubeconfig", quote(k)));
    }
    if let Some(c) = &access.context {
        attrs.push(("context", quote(c)));
    }
    attrs.push(("version", quote(&a.version.to_string())));
    let mut s = format!("cluster {} {{\n", quote(&label));
    push_attrs(&mut s, "  ", &attrs);
    if spec.kind == "kubeadm" {
        let hosts: Vec<String> = access
            .control_plane_hosts
            .iter()
            .map(|h| quote(h))
            .collect();
        let _ = write!(
            s,
            "\n  # kup runs kubeadm on these hosts over SSH (your ~/.ssh/config, agent and\n  # known_hosts apply); add an `ssh {{ user = ..., private_key = ... }}` block if they need one.\n  control_plane {{\n    hosts = [{}]\n  }}\n",
            hosts.join(", ")
        );
    }
    // Add-ons follow the control plane: "compatible" keeps what runs (it is compatible)
    // and moves it only when an upgrade needs it.
    for ad in &a.addons {
        let _ = write!(
            s,
            "\n  addon {} {{\n    version = \"compatible\" # runs {}\n  }}\n",
            quote(&ad.name),
            ad.version
        );
    }
    // K3s/RKE2 servers are a node group of their own (its control-plane round); kubeadm's
    // control plane is the `control_plane` block above.
    for g in a
        .node_groups
        .iter()
        .filter(|g| !(g.control_plane && spec.kind == "kubeadm"))
    {
        s.push('\n');
        s.push_str(&node_group_block(
            spec,
            g,
            access.node_selectors.get(&g.name),
        ));
    }
    s.push_str("}\n");
    s
}

/// A node group with the update settings the provider has now.
fn node_group_block(spec: &ProviderSpec, g: &ActualNodeGroup, selector: Option<&String>) -> String {
    // A group that runs the control plane (K3s/RKE2 servers) follows the cluster's version.
    let mut attrs: Vec<(&str, String)> = Vec::new();
    if !g.control_plane {
        attrs.push(("version", quote(&g.version.to_string())));
    }
    let system_pool = g
        .labels
        .get(AKS_MODE_LABEL)
        .is_some_and(|m| m.eq_ignore_ascii_case("system"));
    if g.blue_green.is_some() {
        attrs.push(("strategy", quote("blue_green")));
    }
    match (g.max_unavailable, &g.blue_green) {
        (_, Some(bg)) => attrs.push(("max_unavailable", unavailable(bg.batch))),
        (Some(u), None) if !system_pool => attrs.push(("max_unavailable", unavailable(u))),
        _ => {}
    }
    if let Some(sel) = selector {
        attrs.push(("node_selector", quote(sel)));
    }
    if let Some(surge) = g.max_surge.filter(|_| g.blue_green.is_none()) {
        attrs.push(("max_surge", unavailable(surge)));
    }
    if let Some(soak) = g.node_soak.filter(|d| spec.kind == "aks" && !d.is_zero()) {
        attrs.push(("node_soak", quote(&duration(soak))));
    }
    let mut s = format!("  node_group {} {{\n", quote(&g.name));
    push_attrs(&mut s, "    ", &attrs);
    if let Some(d) = &g.drain_limits {
        let mut drain: Vec<(&str, String)> = Vec::new();
        if let Some(t) = d.pdb_timeout {
            drain.push(("timeout", quote(&duration(t))));
        }
        if let Some(t) = d.grace_termination {
            drain.push(("grace_period", quote(&duration(t))));
        }
        if !drain.is_empty() {
            s.push_str("    drain {\n");
            push_attrs(&mut s, "      ", &drain);
            s.push_str("    }\n");
        }
    }
    if let Some(bg) = &g.blue_green {
        s.push_str("    blue_green {\n");
        push_attrs(
            &mut s,
            "      ",
            &[
                ("soak", quote(&duration(bg.soak))),
                ("batch_soak", quote(&duration(bg.batch_soak))),
                ("native", "true".into()),
            ],
        );
        s.push_str("    }\n");
    }
    s.push_str("  }\n");
    s
}

/// `name = value` lines with the `=` aligned, as `kup fmt` writes them.
fn push_attrs(s: &mut String, indent: &str, attrs: &[(&str, String)]) {
    let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in attrs {
        let _ = writeln!(s, "{indent}{k:<width$} = {v}");
    }
}

fn unavailable(u: Unavailable) -> String {
    match u {
        Unavailable::Count(n) => n.to_string(),
        Unavailable::Percent(p) => quote(&format!("{p}%")),
    }
}

/// `1h`, `10m`, `90s`: the largest whole unit.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A cluster label from its provider name: letters, digits, `-` and `_`.
fn label(name: &str) -> String {
    let l: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if l.is_empty() {
        "cluster".into()
    } else {
        l
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cluster_is_written_with_its_exact_versions_and_settings() {
        let spec: ProviderSpec =
            serde_json::from_value(json!({ "kind": "eks", "region": "eu-west-1" })).unwrap();
        let a: ActualCluster = serde_json::from_value(json!({
            "name": "prod.eu", "version": "1.28", "status": "ACTIVE", "offered_versions": [],
            "node_groups": [
                { "name": "general", "version": "1.28", "status": "ACTIVE", "desired_size": 3, "min_size": 1, "max_size": 4,
                  "max_unavailable": { "percent": 25 } }
            ],
            "addons": [{ "name": "coredns", "version": "v1.10.1-eksbuild.7", "status": "ACTIVE" }]
        }))
        .unwrap();
        let text = generated_config(
            &spec,
            &[a],
            &KubeAccess::default(),
            "kup generate -provider eks",
        );
        assert!(
            text.contains("provider \"eks\" {\n  region = \"eu-west-1\"\n}\n"),
            "{text}"
        );
        assert!(text.contains("cluster \"prod_eu\" {\n  provider = \"eks\"\n  name     = \"prod.eu\"\n  version  = \"1.28\"\n"), "{text}");
        assert!(text.contains("  addon \"coredns\" {\n    version = \"compatible\" # runs v1.10.1-eksbuild.7\n  }\n"), "{text}");
        assert!(text.contains("  node_group \"general\" {\n    version         = \"1.28\"\n    max_unavailable = \"25%\"\n  }\n"), "{text}");
        // It is kup configuration: it parses.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("main.kup.hcl"), &text).unwrap();
        let loaded = kup_engine::config::load_dir(tmp.path(), &Default::default());
        assert!(loaded.is_ok(), "{text}\n{:?}", loaded.err());
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_secs(600)), "10m");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(0)), "0s");
    }
}
