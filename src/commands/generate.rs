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
use crate::render::hcl::generated_config;

/// Providers with an API that lists clusters. K3s, RKE2 and kubeadm reach one cluster
/// through its kubeconfig: its block is short to write by hand (see the examples).
const LISTABLE: &[&str] = &["eks", "gke", "aks"];

pub async fn run(args: GenerateArgs) -> Result<ExitCode> {
    if !LISTABLE.contains(&args.provider.as_str()) {
        return Err(Failure::Message(format!(
            "-provider {}: kup generate reads eks, gke or aks (their APIs list clusters); a K3s, RKE2 or kubeadm cluster is one kubeconfig away: start from examples/{}/main.kup.hcl",
            args.provider,
            if args.provider == "rke2" { "k3s" } else { &args.provider }
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
    let result = async {
        let ctx = kup_provider::BuildContext {
            clusters: Vec::new(),
            kubeconfigs,
        };
        let provider = kup_provider::build_with(&spec, endpoint.as_deref(), &ctx)
            .await
            .map_err(|e| Failure::Message(format!("provider \"{}\": {}", spec.key(), e.message)))?;
        let names = provider
            .list_clusters()
            .await
            .map_err(|e| Failure::Message(format!("cannot list the clusters: {}", e.message)))?;
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
    let text = generated_config(&spec, &clusters, &command_line(&args));
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
        origin: None,
    };
    Ok(spec)
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
