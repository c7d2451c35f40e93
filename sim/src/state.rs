//! Shared server state: the world, active faults, the call log, persistence.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::faults::{FailFault, FaultSpec, JobFail, KubeadmFail};
use crate::kube::Kube;
use crate::world::{self, Format, World};

/// One mutating EKS call, as seen by `GET /_sim/calls`.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub op: String,
    pub cluster: Option<String>,
    pub nodegroup: Option<String>,
    pub addon: Option<String>,
    pub client_request_token: Option<String>,
    pub update_id: Option<String>,
    /// Same clientRequestToken as an earlier call: answered with the earlier result.
    pub replay: bool,
    /// The call changed the world (succeeded and was not a replay).
    pub mutation: bool,
    /// Error type returned instead (e.g. `ResourceInUseException`, or an injected
    /// `ThrottlingException`).
    pub error: Option<String>,
    /// RFC 3339 wall-clock time the call was received.
    pub at: String,
}

pub struct FaultState {
    pub spec: FaultSpec,
    pub rng: StdRng,
    /// `fail=` items not yet consumed.
    pub fails: Vec<FailFault>,
    /// `jobfail=` items not yet consumed (K3s/RKE2 SUC Jobs).
    pub jobfails: Vec<JobFail>,
    /// `kubeadmfail=` items not yet consumed (kubeadm upgrade apply / node).
    pub kubeadmfails: Vec<KubeadmFail>,
    /// Throttles and 5xx injected so far (reads included), for tests to check that a
    /// fault really happened.
    pub injected: u64,
}

impl FaultState {
    pub fn new(spec: FaultSpec) -> Self {
        let rng = match spec.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        FaultState {
            fails: spec.fail.clone(),
            jobfails: spec.jobfail.clone(),
            kubeadmfails: spec.kubeadmfail.clone(),
            spec,
            rng,
            injected: 0,
        }
    }

    /// Decide whether this request is throttled or gets a 500. Draws from the RNG only for
    /// non-zero rates, so a seed gives the same sequence for the same requests.
    pub fn roll(&mut self) -> Option<&'static str> {
        let fault = if self.spec.throttle > 0.0 && self.rng.random::<f64>() < self.spec.throttle {
            Some("ThrottlingException")
        } else if self.spec.error500 > 0.0 && self.rng.random::<f64>() < self.spec.error500 {
            Some("ServerException")
        } else {
            None
        };
        if fault.is_some() {
            self.injected += 1;
        }
        fault
    }

    pub fn hangs(&self, cluster: &str, nodegroup: Option<&str>, addon: Option<&str>) -> bool {
        self.spec
            .hang
            .iter()
            .any(|t| t.matches(cluster, nodegroup, addon))
    }
}

pub struct Inner {
    pub world: World,
    pub faults: FaultState,
    pub calls: Vec<CallRecord>,
    /// When each cloud API request (EKS, GKE, AKS) arrived, wall-clock seconds, so a
    /// client's request rate can be checked (`GET /_sim/requests`).
    pub requests: Vec<f64>,
    /// Every cluster's Kubernetes side (nodes, pods, controllers, rolling updates).
    pub kube: Kube,
}

impl Inner {
    /// Apply every completion due by `now`, then advance the Kubernetes side (timers,
    /// node-group sync, rolling updates, controllers). True when the EKS world changed.
    pub fn advance(&mut self, now: f64) -> bool {
        let faults = &self.faults;
        let mut changed = self.world.advance(now, &|c, n, a| faults.hangs(c, n, a));
        changed |= crate::gke::advance(&mut self.world.gke, now, &|c, p| faults.hangs(c, p, None));
        changed |= crate::aks::advance(&mut self.world.aks, now, &|c, p| faults.hangs(c, p, None));
        changed |= self.kube.tick(
            &mut self.world,
            &self.faults.spec,
            &mut self.faults.jobfails,
            now,
        );
        changed
    }
}

pub struct App {
    pub inner: Mutex<Inner>,
    pub speed: f64,
    pub path: PathBuf,
    pub format: Format,
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl App {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Render the world and write it atomically to the world file.
    pub fn save(&self, inner: &Inner, now: f64) -> anyhow::Result<()> {
        let f = world::to_file(&inner.world, now, self.speed);
        let text = world::render(&f, self.format).map_err(anyhow::Error::msg)?;
        world::write_atomic(&self.path, &text)
            .map_err(|e| anyhow::anyhow!("saving world file {}: {e}", self.path.display()))
    }

    /// Save, logging (not failing) on error: used on the request path.
    pub fn save_logged(&self, inner: &Inner, now: f64) {
        if let Err(e) = self.save(inner, now) {
            tracing::error!("{e:#}");
        }
    }
}
