//! `kup generate -provider eks|gke|aks [provider settings] [-out DIR] [-force]`: read
//! every cluster the provider can see and write `DIR/<provider>.kup.hcl` declaring them
//! as they run, so a team starts from what it has and the first `kup plan` says
//! "No changes". Like Terraform's config generation it never overwrites a file unless
//! told to.

use std::path::Path;
use std::process::ExitCode;

use futures::stream::{self, StreamExt};
use kup_engine::model::ProviderSpec;
use kup_engine::provider::ClusterTarget;

use crate::cli::GenerateArgs;
use crate::failure::{Failure, Result};
use crate::render::hcl::{generated_config, KubeAccess};

/// Providers with an API that lists clusters.
const LISTABLE: &[&str] = &["eks", "gke", "aks"];
/// Providers reached through one cluster's kubeconfig.
const BY_KUBECONFIG: &[&str] = &["k3s", "rke2", "kubeadm"];

/// The label kubeadm puts on control-plane nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

pub async fn run(args: GenerateArgs) -> Result<ExitCode> {
    let by_kubeconfig = BY_KUBECONFIG.contains(&args.provider.as_str());
    if !LISTABLE.contains(&args.provider.as_str()) && !by_kubeconfig {
        return Err(Failure::Message(format!(
            "-provider {}: kup generate reads eks, gke or aks (every cluster their APIs list), or k3s, rke2 or kubeadm (the cluster of -kubeconfig)",
            args.provider
        )));
    }
    if args.provider == "kubeadm" && args.kubeconfig.is_none() {
        return Err(Failure::Message(
            "-provider kubeadm reads the cluster through its Kubernetes API: give -kubeconfig FILE (a copy of /etc/kubernetes/admin.conf), and -context NAME unless it is the file's current context".into(),
        ));
    }
    if by_kubeconfig && args.kubeconfig.is_none() && !args.simulate {
        return Err(Failure::Message(format!(
            "-provider {} reads one cluster through its Kubernetes API: give -kubeconfig FILE (and -context NAME unless it is the file's current context)",
            args.provider
        )));
    }
    if !by_kubeconfig
        && (args.kubeconfig.is_some() || args.context.is_some() || args.name.is_some())
    {
        return Err(Failure::Message(format!(
            "-kubeconfig, -context and -name are for k3s, rke2 and kubeadm; -provider {} lists its clusters through its own API",
            args.provider
        )));
    }
    if args.world.is_some() && !args.simulate {
        return Err(Failure::Message(
            "-world names a simulated world: add -simulate (or drop -world to read the real cloud)"
                .into(),
        ));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Message(format!("cannot create {}: {e}", args.out.display())))?;
    let out_dir = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    let file = out_dir.join(format!("{}.kup.hcl", args.provider));
    if file.exists() && !args.force {
        return Err(Failure::Message(format!(
            "{} already exists; kup generate does not overwrite configuration. Move it away, write elsewhere with -out DIR, or pass -force",
            file.display()
        )));
    }
    let spec = provider_spec(&args, &out_dir)?;

    // Connect: the simulator in-process when asked, as `simulate = true` does.
    let mut sim = None;
    let mut endpoint = args.endpoint.clone();
    let mut kubeconfigs = Default::default();
    if args.simulate && endpoint.is_none() {
        if spec.world.is_none() {
            return Err(Failure::Message(
                "-simulate without -endpoint needs -world FILE: the world to simulate".into(),
            ));
        }
        // The simulator starts from the world's absolute path (the file may say it
        // relative to its own directory).
        let mut absolute = spec.clone();
        absolute.world = spec
            .world
            .as_ref()
            .map(|w| out_dir.join(w).display().to_string());
        let s = crate::workspace::start_sim(&absolute, &out_dir).await?;
        endpoint = Some(s.endpoints().eks.clone());
        kubeconfigs = s.endpoints().kubeconfigs.clone();
        sim = Some(s);
    }
    let mut access = kube_access(&args)?;
    let one = if by_kubeconfig {
        Some(cluster_name(&args)?)
    } else {
        None
    };
    let result = async {
        // A kubeconfig-reached provider knows its cluster from the configuration: this
        // is the configuration it would have.
        let clusters = match &one {
            Some(name) if args.provider == "kubeadm" => {
                let spec = kubeadm_cluster(name, &access).await?;
                // What the generated block must say to reach the same hosts and nodes.
                access.control_plane_hosts = spec
                    .kubeadm
                    .as_ref()
                    .map(|k| k.control_plane_hosts.clone())
                    .unwrap_or_default();
                access.node_selectors = spec
                    .node_groups
                    .iter()
                    .filter_map(|g| g.node_selector.clone().map(|s| (g.name.clone(), s)))
                    .collect();
                vec![spec]
            }
            Some(name) => vec![kubeconfig_cluster(&args.provider, name, &access)?],
            None => Vec::new(),
        };
        let ctx = kup_provider::BuildContext {
            clusters,
            kubeconfigs,
        };
        let provider = kup_provider::build_with(&spec, endpoint.as_deref(), &ctx)
            .await
            .map_err(|e| Failure::Message(format!("provider \"{}\": {}", spec.key(), e.message)))?;
        let names = match &one {
            Some(name) => vec![name.clone()],
            None => provider.list_clusters().await.map_err(|e| {
                Failure::Message(format!("cannot list the clusters: {}", e.message))
            })?,
        };
        let read: Vec<_> = stream::iter(names)
            .map(|name| {
                let provider = provider.clone();
                async move {
                    let target = ClusterTarget {
                        name: name.clone(),
                        region: None,
                    };
                    provider
                        .refresh(&target)
                        .await
                        .map_err(|e| format!("{name}: {}", e.message))
                }
            })
            .buffered(args.parallelism.max(1))
            .collect()
            .await;
        let mut clusters = Vec::new();
        let mut errors = Vec::new();
        for r in read {
            match r {
                Ok(a) => clusters.push(a),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(Failure::Message(format!(
                "cannot read every cluster, so nothing was written:\n  {}",
                errors.join("\n  ")
            )));
        }
        Ok(clusters)
    }
    .await;
    if let Some(s) = sim {
        if let Err(e) = s.shutdown().await {
            eprintln!("warning: the simulator could not save its world: {e:#}");
        }
    }
    let clusters = result?;
    let text = generated_config(&spec, &clusters, &access, &command_line(&args));
    kup_engine::fsutil::write_atomic(&file, text.as_bytes())
        .map_err(|e| Failure::Message(format!("cannot write {}: {e}", file.display())))?;
    println!(
        "Wrote {} ({} cluster{}). `kup plan {}` should now say: No changes.",
        file.display(),
        clusters.len(),
        if clusters.len() == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The provider block's settings from the flags. A world inside the output directory is
/// written relative to it, so the directory can move.
fn provider_spec(args: &GenerateArgs, out_dir: &Path) -> Result<ProviderSpec> {
    let world = match &args.world {
        Some(w) => {
            let abs = std::fs::canonicalize(w)
                .map_err(|e| Failure::Message(format!("-world {}: {e}", w.display())))?;
            Some(match abs.strip_prefix(out_dir) {
                Ok(rel) => rel.display().to_string(),
                Err(_) => abs.display().to_string(),
            })
        }
        None => None,
    };
    let spec = ProviderSpec {
        kind: args.provider.clone(),
        alias: None,
        region: args.region.clone(),
        profile: args.profile.clone(),
        project: args.project.clone(),
        location: args.location.clone(),
        subscription_id: args.subscription_id.clone(),
        resource_group: args.resource_group.clone(),
        api_version: None,
        channel_server: None,
        versions: Vec::new(),
        endpoint: args.endpoint.clone(),
        simulate: args.simulate,
        world,
        speed: None,
        poll_interval: None,
        requests_per_second: None,
        request_timeout: None,
        operation_timeout: None,
        tls: Default::default(),
        origin: None,
    };
    Ok(spec)
}

/// The `kubeconfig`/`context` the generated cluster block carries (none for the
/// simulator, which hands kup its kubeconfigs).
fn kube_access(args: &GenerateArgs) -> Result<KubeAccess> {
    let kubeconfig = match &args.kubeconfig {
        Some(k) => Some(
            std::fs::canonicalize(k)
                .map_err(|e| Failure::Message(format!("-kubeconfig {}: {e}", k.display())))?
                .display()
                .to_string(),
        ),
        None => None,
    };
    Ok(KubeAccess {
        kubeconfig,
        context: args.context.clone(),
        ..Default::default()
    })
}

/// The one cluster of a kubeconfig-reached provider: `-name`, else the context, else the
/// kubeconfig's file name.
fn cluster_name(args: &GenerateArgs) -> Result<String> {
    if let Some(n) = args.name.clone().or_else(|| args.context.clone()) {
        return Ok(n);
    }
    if args.simulate {
        return Err(Failure::Message(
            "-simulate with -provider k3s/rke2: name the simulated cluster with -name".into(),
        ));
    }
    args.kubeconfig
        .as_ref()
        .and_then(|k| k.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::Message("name the cluster with -name".into()))
}

/// The cluster block kup would need to reach it: its name and Kubernetes access, with
/// the two node groups whose selectors kup knows without being told (servers: the
/// control-plane nodes; agents: the rest).
fn kubeconfig_cluster(
    kind: &str,
    name: &str,
    access: &KubeAccess,
) -> Result<kup_engine::model::ClusterSpec> {
    let groups: Vec<serde_json::Value> = ["servers", "agents"]
        .iter()
        .map(|g| group_json(g, None))
        .collect();
    spec_from_json(kind, name, access, groups, serde_json::Value::Null)
}

/// A node group as the configuration would declare it (its version and strategy do not
/// matter for reading the cluster).
fn group_json(name: &str, node_selector: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "version": "1.0",
        "node_selector": node_selector,
        "strategy": { "type": "rolling", "max_unavailable": { "count": 1 } },
    })
}

/// The cluster spec a provider needs to reach `name`; `kubeadm` is that block or null.
fn spec_from_json(
    kind: &str,
    name: &str,
    access: &KubeAccess,
    groups: Vec<serde_json::Value>,
    kubeadm: serde_json::Value,
) -> Result<kup_engine::model::ClusterSpec> {
    serde_json::from_value(serde_json::json!({
        "label": name,
        "provider": kind,
        "name": name,
        "version": "1.0",
        "addons": [],
        "node_groups": groups,
        "parallel_node_groups": 1,
        "kubeconfig": access.kubeconfig,
        "context": access.context,
        "kubeadm": kubeadm,
    }))
    .map_err(|e| Failure::Message(format!("internal: a cluster spec for {name}: {e}")))
}

/// A kubeadm cluster as kup reaches it: its control-plane nodes are the hosts that run
/// `kubeadm upgrade` (their Node names, which must be SSH host names), the other nodes
/// one `workers` group selected by label.
async fn kubeadm_cluster(
    name: &str,
    access: &KubeAccess,
) -> Result<kup_engine::model::ClusterSpec> {
    let kubeconfig = access.kubeconfig.as_deref();
    use kup_engine::provider::NodeOps as _;
    let ops = kup_provider::kube::KubeNodeOps::from_kubeconfig(
        kubeconfig,
        access.context.as_deref(),
        CONTROL_PLANE_LABEL,
    )
    .await
    .map_err(|e| Failure::Message(format!("{name}: {}", e.message)))?;
    let snapshot = ops
        .snapshot()
        .await
        .map_err(|e| Failure::Message(format!("{name}: reading its nodes: {}", e.message)))?;
    let mut control_plane: Vec<String> = snapshot
        .nodes
        .iter()
        .filter(|n| n.labels.contains_key(CONTROL_PLANE_LABEL))
        .map(|n| n.name.clone())
        .collect();
    control_plane.sort();
    if control_plane.is_empty() {
        return Err(Failure::Message(format!(
            "{name}: no node is labelled {CONTROL_PLANE_LABEL}, so kup cannot tell the control-plane hosts; is this a kubeadm cluster?"
        )));
    }
    let workers = snapshot.nodes.len() > control_plane.len();
    let groups: Vec<serde_json::Value> = workers
        .then(|| group_json("workers", Some(format!("!{CONTROL_PLANE_LABEL}"))))
        .into_iter()
        .collect();
    spec_from_json(
        "kubeadm",
        name,
        access,
        groups,
        serde_json::json!({ "control_plane_hosts": control_plane }),
    )
}

/// How the file says it was made (no credentials are ever on the command line).
fn command_line(args: &GenerateArgs) -> String {
    let mut parts = vec![format!("kup generate -provider {}", args.provider)];
    for (flag, v) in [
        ("-region", &args.region),
        ("-project", &args.project),
        ("-location", &args.location),
        ("-subscription-id", &args.subscription_id),
        ("-resource-group", &args.resource_group),
        ("-context", &args.context),
        ("-name", &args.name),
    ] {
        if let Some(v) = v {
            parts.push(format!("{flag} {v}"));
        }
    }
    if args.simulate {
        parts.push("-simulate".into());
    }
    parts.join(" ")
}
