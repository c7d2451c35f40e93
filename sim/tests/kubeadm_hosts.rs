//! kubeadm clusters and their simulated hosts: real sshd per host, the real OpenSSH client,
//! the shell stand-ins (kubeadm, apt-get, dnf, systemctl, …) moving the simulated cluster
//! through the admin endpoints, and the cluster's Kubernetes API showing the result.
//! Skipped (with a printed `SKIPPED: …`) when sshd, ssh or curl is not installed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kup_sim::hosts::{HostOs, HostSpec, Hosts};
use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::Value;

const WORLD: &str = r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1", "cp2"]
  workers       = ["w1", "w2"]
  node "w2" {
    labels = { pool = "gpu" }
  }
  packages = {
    "1.29" = ["1.29.8", "1.29.12"]
    "1.30" = ["1.30.5", "1.30.9"]
    "1.31" = ["1.31.2", "1.31.4"]
  }
  workload "web" {
    replicas = 2
  }
}
"#;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct H {
    sim: Option<Sim>,
    hosts: Arc<Hosts>,
    world: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn tools_available() -> bool {
    let on_path = |n: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|d| d.join(n).is_file())
    };
    Hosts::sshd_available() && on_path("ssh") && on_path("curl")
}

async fn start(speed: f64, specs: Vec<HostSpec>) -> Option<H> {
    if !tools_available() {
        println!("SKIPPED: sshd not installed (or ssh / curl missing)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.hcl");
    std::fs::write(&world, WORLD).unwrap();
    let sim = Sim::start(SimConfig {
        world: world.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed,
        faults: FaultSpec::none(),
    })
    .await
    .unwrap();
    let admin = sim.endpoints().admin;
    let hdir = dir.path().join("hosts");
    let hosts =
        tokio::task::spawn_blocking(move || Hosts::start(&hdir, "lab", &admin, "1.29.8", &specs))
            .await
            .unwrap()
            .unwrap();
    Some(H {
        sim: Some(sim),
        hosts: Arc::new(hosts),
        world,
        http: reqwest::Client::new(),
        _dir: dir,
    })
}

impl H {
    fn sim(&self) -> &Sim {
        self.sim.as_ref().unwrap()
    }

    /// `ssh -F ssh_config NODE.lab CMD`.
    async fn ssh(&self, node: &str, cmd: &str) -> Out {
        let hosts = self.hosts.clone();
        let (node, cmd) = (node.to_string(), cmd.to_string());
        tokio::task::spawn_blocking(move || {
            let o = hosts.ssh(&node, &cmd).output().unwrap();
            Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    /// Run and require success.
    async fn ok(&self, node: &str, cmd: &str) -> String {
        let o = self.ssh(node, cmd).await;
        assert_eq!(
            o.code, 0,
            "{node}: {cmd}\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    /// Run and require failure with `code`; returns stdout + stderr.
    async fn fails(&self, node: &str, cmd: &str, code: i32) -> String {
        let o = self.ssh(node, cmd).await;
        assert_eq!(
            o.code, code,
            "{node}: {cmd}\nstdout: {}\nstderr: {}",
            o.stdout, o.stderr
        );
        format!("{}{}", o.stdout, o.stderr)
    }

    async fn kube(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.sim().endpoints().kube["lab"]);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn node(&self, name: &str) -> Value {
        self.kube(&format!("/api/v1/nodes/{name}")).await
    }

    async fn audit(&self) -> Value {
        reqwest::get(format!("{}/kube/lab/audit", self.sim().endpoints().admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn faults(&self, spec: &str) {
        let r = self
            .http
            .post(format!("{}/faults", self.sim().endpoints().admin))
            .body(spec.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn ready(node: &Value) -> &str {
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_upgrade_over_ssh_on_debian_and_fedora() {
    let Some(h) = start(
        20.0,
        vec![
            HostSpec::new("cp1", HostOs::Debian),
            HostSpec::new("w1", HostOs::Fedora),
        ],
    )
    .await
    else {
        return;
    };
    // The Kubernetes side as kubeadm sets it up.
    let cp1 = h.node("cp1").await;
    assert_eq!(cp1["status"]["nodeInfo"]["kubeletVersion"], "v1.29.8");
    assert_eq!(
        cp1["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert_eq!(
        cp1["spec"]["taints"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    assert_eq!(
        h.node("w2").await["metadata"]["labels"]["pool"],
        Value::from("gpu")
    );
    let api = h
        .kube("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp1")
        .await;
    assert_eq!(
        api["spec"]["containers"][0]["image"],
        "registry.k8s.io/kube-apiserver:v1.29.8"
    );
    assert!(api["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string());
    assert_eq!(api["status"]["phase"], "Running");
    assert_eq!(h.kube("/version").await["gitVersion"], "v1.29.8");
    let cm = h
        .kube("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .await;
    assert!(cm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .contains("kubernetesVersion: v1.29.8"));

    // Basics over SSH.
    assert_eq!(h.ok("cp1", "hostname").await, "cp1\n");
    assert_eq!(
        h.ok("cp1", "sudo -n kubeadm version -o short").await,
        "v1.29.8\n"
    );
    assert_eq!(
        h.ok("cp1", "kubelet --version").await,
        "Kubernetes v1.29.8\n"
    );
    assert!(h
        .ok("cp1", "sudo -n cat /etc/os-release")
        .await
        .contains("ID=debian"));
    h.ok("cp1", "sudo -n test -f /etc/kubernetes/admin.conf")
        .await;
    h.fails("w1", "sudo -n test -f /etc/kubernetes/admin.conf", 1)
        .await;
    h.fails("cp1", "sudo -n test -d /etc/kubernetes/nope", 1)
        .await;
    let e = h
        .fails("cp1", "sudo -n cat /etc/../../../etc/passwd", 1)
        .await;
    assert!(e.contains("paths with .. are refused"), "{e}");
    let e = h.fails("cp1", "sudo -E kubeadm version", 1).await;
    assert!(e.contains("only -n"), "{e}");
    // A hostile argument is logged and passed on verbatim, never evaluated.
    let e = h
        .fails("cp1", "sudo -n kubeadm 'upgrade;touch /tmp/kup-pwned'", 1)
        .await;
    assert!(e.contains("unknown command"), "{e}");
    assert!(!std::path::Path::new("/tmp/kup-pwned").exists());

    // upgrade plan with the installed kubeadm (1.29.8): the newest 1.29 patch.
    let plan = h.ok("cp1", "sudo -n kubeadm upgrade plan").await;
    assert!(plan.contains("kubeadm upgrade apply v1.29.12"), "{plan}");

    // Switch the apt repository to v1.30 through tee, update, list.
    let real = std::path::Path::new("/etc/apt/sources.list.d/kubernetes.list");
    let real_before = real.exists();
    h.ok(
        "cp1",
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' | sudo -n tee /etc/apt/sources.list.d/kubernetes.list",
    )
    .await;
    assert_eq!(real.exists(), real_before, "the real /etc was touched");
    let up = h.ok("cp1", "sudo -n apt-get update").await;
    assert!(up.contains("core:/stable:/v1.30/deb"), "{up}");
    let madison = h.ok("cp1", "apt-cache madison kubeadm").await;
    assert_eq!(
        madison,
        "   kubeadm | 1.30.9-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n   kubeadm | 1.30.5-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n"
    );

    // Held packages, versions not offered, then the documented unhold/install/hold.
    let e = h
        .fails("cp1", "sudo -n apt-get install -y kubeadm=1.30.9-1.1", 100)
        .await;
    assert!(
        e.contains(
            "E: Held packages were changed and -y was used without --allow-change-held-packages."
        ),
        "{e}"
    );
    let e = h
        .fails(
            "cp1",
            "sudo -n apt-get install -y --allow-change-held-packages kubeadm=1.30.7-1.1",
            100,
        )
        .await;
    assert!(
        e.contains("E: Version '1.30.7-1.1' for 'kubeadm' was not found"),
        "{e}"
    );
    assert_eq!(
        h.hosts.installed("cp1", "kubeadm").as_deref(),
        Some("1.29.8")
    );
    let out = h
        .ok(
            "cp1",
            "sudo -n apt-mark unhold kubeadm && sudo -n apt-get install -y kubeadm='1.30.9-*' && sudo -n apt-mark hold kubeadm",
        )
        .await;
    assert!(out.contains("Canceled hold on kubeadm."), "{out}");
    assert!(out.contains("Setting up kubeadm (1.30.9-1.1) ..."), "{out}");
    assert!(out.contains("kubeadm set on hold."), "{out}");
    assert_eq!(
        h.hosts.installed("cp1", "kubeadm").as_deref(),
        Some("1.30.9")
    );
    assert!(h.hosts.held("cp1", "kubeadm"));

    // Skew rules, then the real upgrade.
    let e = h
        .fails("cp1", "sudo -n kubeadm upgrade apply v1.31.4 --yes", 1)
        .await;
    assert!(
        e.contains("Specified version to upgrade to \"v1.31.4\" is too high; kubeadm can upgrade only 1 minor version at a time"),
        "{e}"
    );
    let e = h
        .fails("w1", "sudo -n kubeadm upgrade apply v1.29.8 --yes", 1)
        .await;
    assert!(e.contains("/etc/kubernetes/admin.conf"), "{e}");
    let e = h
        .fails(
            "cp1",
            "sudo -n kubeadm upgrade apply v1.30.9 < /dev/null",
            1,
        )
        .await;
    assert!(e.contains("won't proceed"), "{e}");
    let out = h
        .ok(
            "cp1",
            "sudo -n kubeadm upgrade apply v1.30.9 --yes --certificate-renewal=false",
        )
        .await;
    assert!(
        out.contains(
            "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.30.9\". Enjoy!"
        ),
        "{out}"
    );
    assert_eq!(h.kube("/version").await["gitVersion"], "v1.30.9");
    let api = h
        .kube("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp1")
        .await;
    assert_eq!(
        api["spec"]["containers"][0]["image"],
        "registry.k8s.io/kube-apiserver:v1.30.9"
    );
    assert!(h
        .kube("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .await["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .contains("kubernetesVersion: v1.30.9"));
    assert!(h
        .ok(
            "cp1",
            "sudo -n cat /etc/kubernetes/manifests/kube-apiserver.yaml"
        )
        .await
        .contains("image: registry.k8s.io/kube-apiserver:v1.30.9"));
    // Idempotent.
    h.ok("cp1", "sudo -n kubeadm upgrade apply v1.30.9 --yes")
        .await;

    // kubelet: a kubelet newer than the apiserver is refused; the right one restarts.
    h.hosts.set_installed("w1", "kubelet", "1.31.4").unwrap();
    let e = h.fails("w1", "sudo -n systemctl restart kubelet", 1).await;
    assert!(
        e.contains("kubelet must not be newer than kube-apiserver"),
        "{e}"
    );
    h.hosts.set_installed("w1", "kubelet", "1.29.8").unwrap();
    h.ok(
        "cp1",
        "sudo -n apt-mark unhold kubelet kubectl && sudo -n apt-get install -y kubelet=1.30.9-1.1 kubectl=1.30.9-1.1 && sudo -n apt-mark hold kubelet kubectl",
    )
    .await;
    h.ok(
        "cp1",
        "sudo -n systemctl daemon-reload && sudo -n systemctl restart kubelet",
    )
    .await;
    let n = h.node("cp1").await;
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.30.9");
    assert_eq!(n["status"]["nodeInfo"]["kubeProxyVersion"], "v1.30.9");
    assert_eq!(ready(&n), "False");
    let t0 = Instant::now();
    while ready(&h.node("cp1").await) != "True" {
        assert!(t0.elapsed() < Duration::from_secs(10), "cp1 never Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Fedora (dnf4): the repository excludes the packages unless --disableexcludes.
    assert!(h.ok("w1", "dnf --version").await.starts_with("4.14.0\n"));
    let e = h
        .fails("w1", "sudo -n dnf list --showduplicates kubeadm", 1)
        .await;
    assert!(e.contains("No match for argument: kubeadm"), "{e}");
    h.ok(
        "w1",
        "sudo -n sed -i 's|/v1.29/|/v1.30/|g' /etc/yum.repos.d/kubernetes.repo",
    )
    .await;
    let list = h
        .ok(
            "w1",
            "sudo -n dnf list --showduplicates kubeadm --disableexcludes=kubernetes",
        )
        .await;
    let avail: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with(" kubernetes"))
        .collect();
    assert_eq!(avail.len(), 2, "{list}");
    assert!(
        avail[1].split_whitespace().collect::<Vec<_>>()
            == ["kubeadm.x86_64", "1.30.9-150500.1.1", "kubernetes"],
        "{list}"
    );
    let e = h
        .fails("w1", "sudo -n dnf install -y kubeadm-1.30.9-150500.1.1", 1)
        .await;
    assert!(e.contains("No match for argument: kubeadm"), "{e}");
    h.ok(
        "w1",
        "sudo -n dnf install -y kubeadm-1.30.9-150500.1.1 --disableexcludes=kubernetes",
    )
    .await;
    assert_eq!(
        h.hosts.installed("w1", "kubeadm").as_deref(),
        Some("1.30.9")
    );
    let out = h.ok("w1", "sudo -n kubeadm upgrade node").await;
    assert!(
        out.contains("The configuration for this node was successfully updated!"),
        "{out}"
    );

    // kubectl on a control-plane host talks to the simulated cluster through admin.conf.
    let cfg = h
        .ok(
            "cp1",
            "kubectl -n kube-system get cm kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'",
        )
        .await;
    assert!(cfg.contains("kubernetesVersion: v1.30.9"), "{cfg}");
    assert_eq!(
        h.ok("cp1", "kubectl version --client").await.lines().next(),
        Some("Client Version: v1.30.9")
    );

    // The stand-ins' logs (nothing from shell start-up files) and the simulator's audit.
    let calls = h.hosts.calls("cp1");
    assert_eq!(calls[0], "hostname", "{calls:#?}");
    for line in [
        "hostname",
        "sudo -n kubeadm version -o short",
        "kubeadm version -o short",
        "sudo -n tee /etc/apt/sources.list.d/kubernetes.list",
        "tee /etc/apt/sources.list.d/kubernetes.list",
        "apt-cache madison kubeadm",
        "sudo -n kubeadm upgrade apply v1.30.9 --yes --certificate-renewal=false",
        "kubeadm upgrade apply v1.30.9 --yes --certificate-renewal=false",
        "systemctl restart kubelet",
        "kubeadm upgrade;touch /tmp/kup-pwned",
    ] {
        assert!(
            calls.iter().any(|c| c == line),
            "{line:?} not in {calls:#?}"
        );
    }
    let audit = h.audit().await;
    let ka = audit["kubeadm"].as_array().unwrap();
    let apply: Vec<&Value> = ka.iter().filter(|a| a["op"] == "upgrade-apply").collect();
    assert!(apply
        .iter()
        .any(|a| a["ok"] == true && a["version"] == "1.30.9"));
    assert!(apply
        .iter()
        .any(|a| a["ok"] == false && a["version"] == "1.31.4"));
    assert!(ka
        .iter()
        .any(|a| a["op"] == "kubelet-restart" && a["node"] == "cp1" && a["ok"] == true));
    assert!(ka
        .iter()
        .any(|a| a["op"] == "packages" && a["version"] == "1.30"));

    // Versions persist in the world file.
    let mut h = h;
    h.sim.take().unwrap().shutdown().await.unwrap();
    let text = std::fs::read_to_string(&h.world).unwrap();
    assert!(text.contains("kubeadm_cluster \"lab\""), "{text}");
    assert!(text.contains("version = \"1.30.9\""), "{text}");
    let sim = Sim::start(SimConfig {
        world: h.world.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 20.0,
        faults: FaultSpec::none(),
    })
    .await
    .unwrap();
    h.sim = Some(sim);
    assert_eq!(h.kube("/version").await["gitVersion"], "v1.30.9");
    assert_eq!(
        h.node("cp1").await["status"]["nodeInfo"]["kubeletVersion"],
        "v1.30.9"
    );
    assert_eq!(
        h.node("w1").await["status"]["nodeInfo"]["kubeletVersion"],
        "v1.29.8"
    );
    assert_eq!(
        h.kube("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp1")
            .await["spec"]["containers"][0]["image"],
        "registry.k8s.io/kube-apiserver:v1.30.9"
    );
    // The hosts follow the restarted simulator.
    h.hosts.set_admin_url(&h.sim().endpoints().admin).unwrap();
    h.ok("cp1", "sudo -n kubeadm upgrade plan").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnf5_exclusions_and_kubeadm_faults() {
    let Some(h) = start(
        20.0,
        vec![
            HostSpec::new("cp1", HostOs::Debian),
            HostSpec::new("cp2", HostOs::Debian),
            HostSpec::new("w2", HostOs::Fedora5),
        ],
    )
    .await
    else {
        return;
    };
    // dnf5: only --setopt=disable_excludes lifts the exclusion.
    assert!(h
        .ok("w2", "dnf --version")
        .await
        .starts_with("dnf5 version 5.2.5.0\n"));
    let e = h
        .fails(
            "w2",
            "sudo -n dnf install -y kubeadm-1.29.12 --disableexcludes=kubernetes",
            2,
        )
        .await;
    assert!(
        e.contains("Unknown argument \"--disableexcludes=kubernetes\" for command \"install\"."),
        "{e}"
    );
    let e = h
        .fails("w2", "sudo -n dnf install -y kubeadm-1.29.12", 1)
        .await;
    assert!(e.contains("No match for argument: kubeadm-1.29.12"), "{e}");
    h.ok("w2", "sudo -n dnf makecache").await;
    h.ok(
        "w2",
        "sudo -n dnf install -y --setopt=disable_excludes=kubernetes kubeadm-1.29.12",
    )
    .await;
    assert_eq!(
        h.hosts.installed("w2", "kubeadm").as_deref(),
        Some("1.29.12")
    );
    // apt-get and dnf exist only on their distributions.
    h.fails("w2", "sudo -n apt-get update", 127).await;
    h.fails("cp1", "sudo -n dnf makecache", 127).await;

    // A kubeadmfail fault: the apply fails once, leaves backups, changes nothing.
    h.ok(
        "cp1",
        "sudo -n apt-get update && sudo -n apt-get install -y --allow-change-held-packages kubeadm=1.29.12-1.1",
    )
    .await;
    h.faults("kubeadmfail=lab/cp1").await;
    let e = h
        .fails("cp1", "sudo -n kubeadm upgrade apply v1.29.12 --yes", 1)
        .await;
    assert!(
        e.contains("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: timed out waiting for the condition"),
        "{e}"
    );
    assert!(
        e.contains("[upgrade/apply] The backup of etcd data is stored in /etc/kubernetes/tmp/kubeadm-backup-etcd-"),
        "{e}"
    );
    assert!(
        e.contains("Moved the backup manifests to /etc/kubernetes/tmp/kubeadm-backup-manifests-"),
        "{e}"
    );
    let tmp = h.hosts.root("cp1").join("etc/kubernetes/tmp");
    let names: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("kubeadm-backup-etcd-"))
            && names
                .iter()
                .any(|n| n.starts_with("kubeadm-backup-manifests-")),
        "{names:?}"
    );
    assert_eq!(h.kube("/version").await["gitVersion"], "v1.29.8");
    // Consumed: the retry succeeds.
    h.ok("cp1", "sudo -n kubeadm upgrade apply v1.29.12 --yes")
        .await;
    assert_eq!(h.kube("/version").await["gitVersion"], "v1.29.12");
    let image = |p: Value| {
        p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        image(
            h.kube("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp2")
                .await
        ),
        "registry.k8s.io/kube-apiserver:v1.29.8"
    );
    // A worker kubelet newer than cp2's kube-apiserver is allowed but recorded.
    h.ok(
        "w2",
        "sudo -n dnf install -y --setopt=disable_excludes=kubernetes kubelet-1.29.12 && sudo -n systemctl restart kubelet.service",
    )
    .await;
    let v = h.audit().await["kubeadm_skew_violations"].clone();
    assert!(
        v[0].as_str()
            .unwrap()
            .contains("kube-apiserver on cp2 is still v1.29.8"),
        "{v}"
    );
    // The second control-plane node follows with `kubeadm upgrade node`.
    let out = h.ok("cp2", "sudo -n kubeadm upgrade node").await;
    assert!(
        out.contains(
            "Upgrading your Static Pod-hosted control plane instance to version \"v1.29.12\""
        ),
        "{out}"
    );
    assert_eq!(
        image(
            h.kube("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp2")
                .await
        ),
        "registry.k8s.io/kube-apiserver:v1.29.12"
    );
    assert!(h
        .ok(
            "cp2",
            "sudo -n cat /etc/kubernetes/manifests/kube-scheduler.yaml"
        )
        .await
        .contains("image: registry.k8s.io/kube-scheduler:v1.29.12"));
    // kubeadm of another minor cannot upgrade a control-plane instance.
    h.ok(
        "cp2",
        "sudo -n sed -i 's|/v1.29/|/v1.30/|' /etc/apt/sources.list.d/kubernetes.list && sudo -n apt-get update && sudo -n apt-get install -y --allow-change-held-packages kubeadm=1.30.5-1.1",
    )
    .await;
    let e = h.fails("cp2", "sudo -n kubeadm upgrade node", 1).await;
    assert!(e.contains("kubeadm upgrade apply"), "{e}");
    // A custom message (colons allowed).
    h.faults("kubeadmfail=lab/cp1:[upgrade/apply] FATAL: etcd: boom")
        .await;
    let e = h
        .fails("cp1", "sudo -n kubeadm upgrade apply v1.29.12 --yes", 1)
        .await;
    assert!(e.contains("[upgrade/apply] FATAL: etcd: boom"), "{e}");
    let audit = h.audit().await;
    let failed: Vec<&Value> = audit["kubeadm"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["op"] == "upgrade-apply" && a["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 2, "{audit:#}");
}
