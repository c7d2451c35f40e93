//! `kup-sim`: a simulated cloud served over real wire protocols on loopback.
//!
//! It serves the Amazon EKS REST-JSON API (model `eks-2017-11-01`), written from the
//! service model in `../shared/reference/eks/`, so the real `aws-sdk-eks` client and the aws
//! CLI talk to it unchanged, and the GKE REST API (`container.googleapis.com` v1, from the
//! discovery document in `../shared/reference/gke/`) on the same port, for
//! `google-cloud-container-v1` and `gcloud container`, and the Azure Resource Manager API for
//! AKS (`Microsoft.ContainerService` managedClusters / agentPools under `/subscriptions/`, from
//! `../shared/reference/aks/`). The world (clusters, node groups, add-ons, in-flight updates)
//! lives in an HCL or JSON file that the simulator rewrites after every change. An admin API
//! under `/_sim/` exposes the call log, the world, runtime fault injection and the Kubernetes
//! audit. Every cluster also gets a Kubernetes API server (nodes from its node groups, pods,
//! PDBs, controllers, eviction, watches) on its own loopback port, with a kubeconfig written
//! next to the world file; managed node-group version updates really replace its nodes.
//!
//! See `README.md` in this crate for the world-file language, the catalog, the faults grammar
//! and the admin API.

mod aks;
pub mod catalog;
mod eks;
/// The AKS versions the simulated Azure Resource Manager offers (patch versions, oldest
/// first), so a world written for the simulator can stay within them.
pub use aks::VERSIONS as AKS_VERSIONS;
/// How long the simulated EKS takes for each operation (simulated seconds), so benchmarks can
/// compute the lower bound of an apply from the same numbers.
pub use eks::durations as eks_durations;
mod error;
mod faults;
mod gke;
pub mod hosts;
mod insights;
mod k3s;
mod kube;
mod kubeadm;
mod removed_apis;
mod server;
mod stage;
mod state;
mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{
    FailFault, FaultSpec, JobFail, KubeadmFail, Target as FaultTarget, AKS_ERROR_CODES,
    ERROR_CODES, GKE_ERROR_CODES,
};

use state::{now_secs, App, FaultState, Inner};

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// World file (`.hcl` or `.json`); read at start, rewritten after every change.
    pub world: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Time acceleration: simulated durations are divided by this (1 = real time).
    pub speed: f64,
    /// Faults to inject from the start.
    pub faults: FaultSpec,
}

/// Where a running simulator answers.
#[derive(serde::Serialize, Clone, Debug)]
pub struct Endpoints {
    /// EKS API endpoint: `http://127.0.0.1:PORT`. The GKE API (`/v1/projects/…`) and the AKS
    /// ARM API (`/subscriptions/…`) are served on the same base URL.
    pub eks: String,
    /// Admin API base: `http://127.0.0.1:PORT/_sim`.
    pub admin: String,
    /// Kubernetes API server per cluster: `http://127.0.0.1:PORT` (ports change every run).
    pub kube: BTreeMap<String, String>,
    /// Kubeconfig per cluster (context = cluster name), next to the world file.
    pub kubeconfigs: BTreeMap<String, PathBuf>,
}

/// A running simulator.
pub struct Sim {
    app: Arc<App>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    ticker: JoinHandle<()>,
    kube_stop: tokio::sync::watch::Sender<bool>,
    kube_servers: Vec<JoinHandle<std::io::Result<()>>>,
    kube: BTreeMap<String, String>,
    kubeconfigs: BTreeMap<String, PathBuf>,
}

/// `<world dir>/<world file stem>.kube/`.
fn kubeconfig_dir(world: &Path) -> PathBuf {
    let dir = world
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = world
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "world".into());
    dir.join(format!("{stem}.kube"))
}

fn kubeconfig_text(cluster: &str, server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    server: {server}
contexts:
- name: {cluster}
  context:
    cluster: {cluster}
    user: {cluster}
current-context: {cluster}
preferences: {{}}
users:
- name: {cluster}
  user:
    token: kup-sim-token
"
    )
}

impl Sim {
    /// Load the world file, bind, spawn the server task and return.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        if !(cfg.speed.is_finite() && cfg.speed > 0.0) {
            anyhow::bail!("speed must be a positive number, got {}", cfg.speed);
        }
        let format = world::Format::from_path(&cfg.world).map_err(anyhow::Error::msg)?;
        let text = std::fs::read_to_string(&cfg.world)
            .with_context(|| format!("reading world file {}", cfg.world.display()))?;
        let now = now_secs();
        let file = world::parse_text(&cfg.world, &text, format).map_err(anyhow::Error::msg)?;
        let mut w =
            world::from_file(&cfg.world, file, now, cfg.speed).map_err(anyhow::Error::msg)?;
        let kube = kube::Kube::init(&mut w, cfg.speed, now);
        let app = Arc::new(App {
            inner: Mutex::new(Inner {
                world: w,
                faults: FaultState::new(cfg.faults.clone()),
                calls: Vec::new(),
                requests: Vec::new(),
                kube,
            }),
            speed: cfg.speed,
            path: cfg.world.clone(),
            format,
        });
        // One Kubernetes API server per cluster, each on its own loopback port.
        let (kube_stop, kube_stop_rx) = tokio::sync::watch::channel(false);
        let mut kube_servers = Vec::new();
        let mut kube_urls = BTreeMap::new();
        let mut kubeconfigs = BTreeMap::new();
        let names: Vec<String> = {
            let inner = app.lock();
            let w = &inner.world;
            w.clusters
                .keys()
                .chain(w.gke.keys())
                .chain(w.aks.keys())
                .chain(w.k3s.keys())
                .chain(w.kubeadm.keys())
                .cloned()
                .collect()
        };
        let kdir = kubeconfig_dir(&cfg.world);
        if !names.is_empty() {
            std::fs::create_dir_all(&kdir)
                .with_context(|| format!("creating {}", kdir.display()))?;
        }
        for name in names {
            let ip = match cfg.listen.ip() {
                ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
                .await
                .with_context(|| format!("binding the Kubernetes API of cluster {name}"))?;
            let kaddr = listener.local_addr()?;
            let url = format!("http://{kaddr}");
            {
                let mut inner = app.lock();
                if let Some(c) = inner.world.clusters.get_mut(&name) {
                    c.endpoint = Some(url.clone());
                }
                if let Some(g) = inner.world.gke.get_mut(&name) {
                    g.endpoint = Some(url.clone());
                }
                if let Some(a) = inner.world.aks.get_mut(&name) {
                    a.endpoint = Some(url.clone());
                }
                if let Some(k) = inner.world.k3s.get_mut(&name) {
                    k.endpoint = Some(url.clone());
                }
                if let Some(k) = inner.world.kubeadm.get_mut(&name) {
                    k.endpoint = Some(url.clone());
                }
                if let Some(kc) = inner.kube.cluster_mut(&name) {
                    kc.endpoint = url.clone();
                }
            }
            let path = kdir.join(format!("{name}.yaml"));
            world::write_atomic(&path, &kubeconfig_text(&name, &url))
                .with_context(|| format!("writing kubeconfig {}", path.display()))?;
            let router =
                axum::Router::new()
                    .fallback(kube::api::handle)
                    .with_state(kube::api::KubeSrv {
                        app: app.clone(),
                        cluster: name.clone(),
                        shutdown: kube_stop_rx.clone(),
                    });
            let mut stop = kube_stop_rx.clone();
            kube_servers.push(tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|v| *v).await;
                    })
                    .await
            }));
            kube_urls.insert(name.clone(), url);
            kubeconfigs.insert(name, path);
        }
        // Apply anything already due and write the normalised world back once.
        {
            let mut inner = app.lock();
            inner.advance(now);
            app.save(&inner, now)?;
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let router = axum::Router::new()
            .fallback(server::handle)
            .with_state(app.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        let tick_app = app.clone();
        let ticker = tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(20));
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                let now = now_secs();
                let mut inner = tick_app.lock();
                if inner.advance(now) {
                    tick_app.save_logged(&inner, now);
                }
            }
        });
        tracing::info!(%addr, world = %cfg.world.display(), speed = cfg.speed, "kup sim listening");
        Ok(Sim {
            app,
            addr,
            shutdown: Some(tx),
            server,
            ticker,
            kube_stop,
            kube_servers,
            kube: kube_urls,
            kubeconfigs,
        })
    }

    /// The socket address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoints(&self) -> Endpoints {
        let host = if self.addr.ip().is_unspecified() {
            match self.addr {
                SocketAddr::V4(_) => "127.0.0.1".to_string(),
                SocketAddr::V6(_) => "[::1]".to_string(),
            }
        } else {
            match self.addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        let base = format!("http://{host}:{}", self.addr.port());
        Endpoints {
            admin: format!("{base}/_sim"),
            eks: base,
            kube: self.kube.clone(),
            kubeconfigs: self.kubeconfigs.clone(),
        }
    }

    /// Stop serving, apply completions due now and save the world.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.kube_stop.send(true);
        self.ticker.abort();
        let _ = (&mut self.ticker).await;
        for h in std::mem::take(&mut self.kube_servers) {
            if tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .is_err()
            {
                tracing::warn!("a Kubernetes API server did not stop within 5s");
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), &mut self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("sim server ended with error: {e}"),
            Ok(Err(e)) => tracing::warn!("sim server task failed: {e}"),
            Err(_) => {
                self.server.abort();
                tracing::warn!("sim server did not stop within 5s; aborted");
            }
        }
        let now = now_secs();
        let mut inner = self.app.lock();
        inner.advance(now);
        self.app.save(&inner, now)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // A Sim dropped without shutdown() stops serving; the world was already saved after
        // every change.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.kube_stop.send(true);
        self.ticker.abort();
        for h in &self.kube_servers {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}

    #[test]
    fn sim_and_its_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let cfg = SimConfig {
            world: "w.hcl".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 1.0,
            faults: FaultSpec::none(),
        };
        let fut = Sim::start(cfg);
        is_send(&fut);
        drop(fut);
        let ep = Endpoints {
            eks: String::new(),
            admin: String::new(),
            kube: BTreeMap::new(),
            kubeconfigs: BTreeMap::new(),
        };
        send_sync(&ep);
        fn sim_is_send_sync<T: Send + Sync>() {}
        sim_is_send_sync::<Sim>();
    }

    #[tokio::test]
    async fn start_rejects_bad_speed_and_missing_file() {
        let cfg = |speed: f64| SimConfig {
            world: "/nonexistent/dir/world.hcl".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed,
            faults: FaultSpec::none(),
        };
        let e = Sim::start(cfg(0.0)).await.err().unwrap();
        assert!(e.to_string().contains("speed"), "{e}");
        let e = Sim::start(cfg(10.0)).await.err().unwrap();
        assert!(
            format!("{e:#}").contains("/nonexistent/dir/world.hcl"),
            "{e:#}"
        );
    }
}
