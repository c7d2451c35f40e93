//! `terraform plan` of N `kup_cluster` resources against `kup plan` of the same N clusters,
//! back to back in one run, on one simulated EKS fleet (N clusters at 1.28 planned to 1.30,
//! each with a node group and an add-on), both at their default parallelism of 10. Both
//! make the same kup plan per cluster; the difference is what Terraform adds around it
//! (starting the provider, one gRPC round trip per resource and phase, msgpack values, a
//! kup configuration loaded per resource). Skips, saying so, without `terraform`.
//!
//!     cargo build --release -p kup-terraform   # the provider binary, beside kup
//!     cargo bench --bench terraform_plan                        # 50 clusters
//!     KUP_BENCH_CLUSTERS=200 cargo bench --bench terraform_plan
//!
//! A harness rather than criterion: each sample is a whole CLI run, and the point is the
//! ratio between the two tools on the same fleet.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KUP: &str = env!("CARGO_BIN_EXE_kup");
const ROUNDS: usize = 3;

/// Where `terraform-provider-kup` was built (beside `kup`; it belongs to `kup-terraform`).
fn provider_dir() -> &'static Path {
    let dir = Path::new(KUP).parent().unwrap();
    assert!(
        dir.join("terraform-provider-kup").exists(),
        "build the provider first: cargo build --release -p kup-terraform"
    );
    dir
}

fn clusters() -> usize {
    std::env::var("KUP_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn timed(what: &str, cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("runs");
    let took = start.elapsed();
    // -detailed-exitcode: 2 means a plan with changes, which both must find.
    assert!(
        out.status.code() == Some(2),
        "{what} did not plan the upgrade:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !Command::new("terraform")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("SKIPPED: terraform is not installed; the comparison needs the Terraform CLI");
        return;
    }
    let n = clusters();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut world = String::new();
    for c in 0..n {
        world.push_str(&format!(
            "cluster \"c{c:03}\" {{\n  region = \"eu-west-1\"\n  version = \"1.28\"\n  node_group \"a\" {{\n    version = \"1.28\"\n    desired_size = 3\n    min_size = 1\n    max_size = 6\n    max_unavailable = 1\n  }}\n  addon \"kube-proxy\" {{ version = \"v1.28.4-eksbuild.1\" }}\n}}\n"
        ));
    }
    std::fs::write(root.join("world.hcl"), world).unwrap();
    let mut sim = Command::new(KUP)
        .args(["sim", "serve", "--world"])
        .arg(root.join("world.hcl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let eks = serde_json::from_str::<serde_json::Value>(&line).unwrap()["eks"]
        .as_str()
        .unwrap()
        .to_string();

    let kup_dir = root.join("kup");
    std::fs::create_dir_all(&kup_dir).unwrap();
    let mut kup_config = format!(
        "provider \"eks\" {{\n  region = \"eu-west-1\"\n  endpoint = \"{eks}\"\n  simulate = true\n}}\n"
    );
    let tf_dir = root.join("tf");
    std::fs::create_dir_all(&tf_dir).unwrap();
    let mut tf_config = format!(
        "terraform {{\n  required_providers {{\n    kup = {{ source = \"kup/kup\" }}\n  }}\n}}\nprovider \"kup\" {{\n  eks {{\n    region = \"eu-west-1\"\n    endpoint = \"{eks}\"\n    simulate = true\n  }}\n}}\n"
    );
    for c in 0..n {
        kup_config.push_str(&format!(
            "cluster \"c{c:03}\" {{\n  version = \"1.30\"\n  node_group \"a\" {{ max_unavailable = 1 }}\n  addon \"kube-proxy\" {{ version = \"compatible\" }}\n}}\n"
        ));
        tf_config.push_str(&format!(
            "resource \"kup_cluster\" \"c{c:03}\" {{\n  name = \"c{c:03}\"\n  version = \"1.30\"\n  node_group {{\n    name = \"a\"\n    max_unavailable = \"1\"\n  }}\n  addon {{\n    name = \"kube-proxy\"\n    version = \"compatible\"\n  }}\n}}\n"
        ));
    }
    std::fs::write(kup_dir.join("main.kup.hcl"), kup_config).unwrap();
    std::fs::write(tf_dir.join("main.tf"), tf_config).unwrap();
    let rc = root.join("terraform.rc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"kup/kup\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir().display()
        ),
    )
    .unwrap();

    let kup_plan = || {
        timed(
            "kup plan",
            Command::new(KUP)
                .args(["plan", "-detailed-exitcode"])
                .arg(&kup_dir)
                .env("NO_COLOR", "1"),
        )
    };
    let terraform_plan = || {
        timed(
            "terraform plan",
            Command::new("terraform")
                .args(["plan", "-no-color", "-detailed-exitcode"])
                .current_dir(&tf_dir)
                .env("TF_CLI_CONFIG_FILE", &rc)
                .env("CHECKPOINT_DISABLE", "1"),
        )
    };
    // One warm-up of each (page cache, the simulator's first requests).
    kup_plan();
    terraform_plan();
    let (mut kup_times, mut tf_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        kup_times.push(kup_plan());
        tf_times.push(terraform_plan());
    }
    let (k, t) = (median(kup_times), median(tf_times));
    println!("plan of {n} simulated EKS clusters (1.28 -> 1.30), median of {ROUNDS} runs each:");
    println!(
        "  kup plan        {:>7.2}s  ({:>6.1} ms per cluster)",
        k.as_secs_f64(),
        k.as_secs_f64() * 1000.0 / n as f64
    );
    println!(
        "  terraform plan  {:>7.2}s  ({:>6.1} ms per cluster)",
        t.as_secs_f64(),
        t.as_secs_f64() * 1000.0 / n as f64
    );
    println!(
        "  terraform plan / kup plan: {:.2}x",
        t.as_secs_f64() / k.as_secs_f64()
    );
    let _ = sim.kill();
    let _ = sim.wait();
}
