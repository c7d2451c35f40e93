//! Shared by every end-to-end test: a `kup sim serve` process on 127.0.0.1, a config
//! directory pointing at it, and a way to run the real `kup` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KUP: &str = env!("CARGO_BIN_EXE_kup");

/// The world most tests start from: one EKS cluster at 1.28 with two node groups.
pub const WORLD_ONE: &str = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {
    version         = "1.28"
    min_size        = 2
    max_size        = 6
    desired_size    = 4
    max_unavailable = 1
  }
  node_group "payments" {
    version         = "1.28"
    min_size        = 1
    max_size        = 3
    desired_size    = 2
    max_unavailable = 1
  }
  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
}
"#;

pub struct Sim {
    child: Child,
    pub eks: String,
    pub admin: String,
    /// Kubernetes API URL of each simulated cluster.
    pub kube: std::collections::BTreeMap<String, String>,
    /// Kubeconfig file of each simulated cluster.
    pub kubeconfigs: std::collections::BTreeMap<String, String>,
    /// Simulated seconds per real second.
    pub speed: f64,
}

impl Sim {
    /// Start `kup sim serve` on a world file written into `dir`.
    pub fn start(dir: &Path, world: &str, speed: f64, faults: Option<&str>) -> Sim {
        let world_path = dir.join("world.hcl");
        std::fs::write(&world_path, world).unwrap();
        let mut cmd = Command::new(KUP);
        cmd.args(["sim", "serve", "--world"])
            .arg(&world_path)
            .args(["--speed", &speed.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(f) = faults {
            cmd.args(["--faults", f]);
        }
        let mut child = cmd.spawn().expect("kup sim serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("sim printed {line:?}: {e}"));
        Sim {
            child,
            eks: v["eks"].as_str().unwrap().to_string(),
            admin: v["admin"].as_str().unwrap().to_string(),
            kube: serde_json::from_value(v["kube"].clone()).unwrap_or_default(),
            kubeconfigs: serde_json::from_value(v["kubeconfigs"].clone()).unwrap_or_default(),
            speed,
        }
    }

    pub fn calls(&self) -> Vec<Value> {
        get_json(&format!("{}/calls", self.admin))
            .as_array()
            .unwrap()
            .clone()
    }

    /// Mutating calls that really changed the world (not replays, not refused).
    pub fn mutations(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c["mutation"].as_bool() == Some(true))
            .collect()
    }

    pub fn world_json(&self) -> Value {
        get_json(&format!("{}/world", self.admin))
    }

    /// A raw request to a simulated cluster's Kubernetes API.
    pub fn kube_request(
        &self,
        cluster: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::Response {
        http()
            .request(method, format!("{}{path}", self.kube[cluster]))
            .send()
            .unwrap()
    }

    /// Updates refused because one was already in flight: a resumed apply re-issued one.
    pub fn refused_in_use(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c["error"] == "ResourceInUseException")
            .count()
    }

    /// The simulator's Kubernetes audit of `cluster` (budgets, lost pods, SUC Jobs and
    /// Plan writes, kubeadm host operations).
    pub fn kube_audit(&self, cluster: &str) -> Value {
        get_json(&format!("{}/kube/{cluster}/audit", self.admin))
    }

    /// Each node of `cluster` and the kubelet version it reports.
    pub fn kubelets(&self, cluster: &str) -> std::collections::BTreeMap<String, String> {
        let nodes: Value = self
            .kube_request(cluster, reqwest::Method::GET, "/api/v1/nodes")
            .json()
            .unwrap();
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["metadata"]["name"].as_str().unwrap().to_string(),
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    pub fn clear_faults(&self) {
        http()
            .delete(format!("{}/faults", self.admin))
            .send()
            .unwrap();
    }

    /// Replace the injected faults (the `--faults` grammar) while the simulator runs.
    pub fn set_faults(&self, spec: &str) {
        let r = http()
            .post(format!("{}/faults", self.admin))
            .body(spec.to_string())
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "faults {spec}: {}",
            r.text().unwrap()
        );
    }

    /// The simulator's fault report: what was injected, per endpoint.
    pub fn faults(&self) -> Value {
        get_json(&format!("{}/faults", self.admin))
    }

    /// A real aws-sdk-eks client pointed at the simulator, for out-of-band changes.
    pub async fn eks_client(&self) -> aws_sdk_eks::Client {
        let conf = aws_sdk_eks::Config::builder()
            .endpoint_url(&self.eks)
            .region(aws_sdk_eks::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_eks::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .build();
        aws_sdk_eks::Client::from_conf(conf)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn get_json(url: &str) -> Value {
    http().get(url).send().unwrap().json().unwrap()
}

/// A configuration directory for `sim`, with `body` after the provider block.
pub fn config_dir(root: &Path, sim: &Sim, body: &str) -> PathBuf {
    let dir = root.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            "provider \"eks\" {{\n  region        = \"eu-west-1\"\n  endpoint      = \"{}\"\n  simulate      = true\n  poll_interval = \"20ms\"\n}}\n\n{body}",
            sim.eks
        ),
    )
    .unwrap();
    dir
}

pub fn one_cluster(target: &str) -> String {
    format!(
        r#"cluster "prod" {{
  name    = "prod-eu"
  version = "{target}"
  addon "kube-proxy" {{ version = "compatible" }}
  addon "coredns"    {{ version = "compatible" }}
  node_group "general" {{
    version         = "{target}"
    max_unavailable = 1
  }}
  node_group "payments" {{
    version         = "{target}"
    max_unavailable = 1
  }}
}}
"#
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn kup(args: &[&str]) -> Run {
    kup_in(None, args)
}

/// `kup` with extra environment variables.
pub fn kup_env(env: &[(&str, &str)], args: &[&str]) -> Run {
    kup_with(None, env, args)
}

pub fn kup_in(cwd: Option<&Path>, args: &[&str]) -> Run {
    kup_with(cwd, &[], args)
}

fn kup_with(cwd: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(KUP);
    // Quiet logs unless the caller asks for them.
    cmd.env_remove("KUP_LOG").envs(env.iter().copied());
    cmd.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    if let Some(c) = cwd {
        cmd.current_dir(c);
    }
    let out: Output = cmd.output().expect("kup runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Start `kup` in the background (for kill and lock tests).
pub fn spawn_kup(args: &[&str]) -> Child {
    spawn_kup_env(&[], args)
}

/// [`spawn_kup`] with extra environment variables.
pub fn spawn_kup_env(env: &[(&str, &str)], args: &[&str]) -> Child {
    Command::new(KUP)
        .envs(env.iter().copied())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kup starts")
}

/// Wait until `f` is true, failing the test after a generous bound (this is a liveness
/// guard, not a performance assertion).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many of the plan's steps call the provider: each is one mutation in the simulator
/// (in-cluster steps such as the post-flight check only read).
pub fn provider_steps(saved: &kup_engine::plan::SavedPlan) -> usize {
    saved
        .plan
        .steps
        .iter()
        .filter(|s| !s.action.is_in_cluster())
        .count()
}

pub fn cluster_version(world: &Value, name: &str) -> String {
    find_cluster(world, name)["version"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn find_cluster<'a>(world: &'a Value, name: &str) -> &'a Value {
    let c = &world["cluster"][name];
    assert!(!c.is_null(), "no cluster {name} in {world}");
    c
}

pub fn node_group_version(world: &Value, cluster: &str, ng: &str) -> String {
    find_cluster(world, cluster)["node_group"][ng]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no node group {ng}"))
        .to_string()
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(".kup").join("kup.state.json")
}

pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(".kup").join("kup.state.json.journal")
}

/// An HTTPS front on 127.0.0.1 for a plain-HTTP server (the simulator): TLS ends here with
/// a certificate for 127.0.0.1 issued by a throwaway CA, and the bytes go on unchanged.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that issued the front's certificate (PEM), for `ca_file`.
    pub ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsFront {
    /// In front of `backend` (`http://127.0.0.1:PORT`).
    pub fn start(backend: &str) -> TlsFront {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "kup test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let backend = backend.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        c = listener.accept() => match c { Ok(c) => c, Err(_) => continue },
                        _ = &mut stopped => return,
                    };
                    let (acceptor, backend) = (acceptor.clone(), backend.clone());
                    tokio::spawn(async move {
                        // A client that refuses the certificate just goes away.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront {
            url,
            ca_pem,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
