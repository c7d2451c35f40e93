//! Shared server state: the world, active faults, the call log, persistence.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use std::collections::BTreeMap;

use crate::faults::{FailFault, Fault, FaultSpec, JobFail, KubeadmFail, Rate};
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
    /// A fault injected into this call's answer (`reset`, `truncate`, …): the call was
    /// carried out but the client never saw a good answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
}

/// One cloud API endpoint (API, method and route) as seen by `GET /_sim/faults`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointRecord {
    pub requests: u64,
    /// The faults injected into its requests, in order.
    pub faults: Vec<&'static str>,
}

/// A `kubedown=` item: when the outage started (real seconds), once it has.
#[derive(Debug, Clone)]
pub struct KubeDown {
    pub cluster: String,
    pub duration: std::time::Duration,
    pub started: Option<f64>,
    /// Connections dropped because of it.
    pub dropped: u64,
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
    /// Per-request faults injected so far (reads included), for tests to check that a
    /// fault really happened.
    pub injected: u64,
    /// Every endpoint requested since the faults were set, and what each was given.
    pub endpoints: BTreeMap<String, EndpointRecord>,
    pub kubedown: Vec<KubeDown>,
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
            kubedown: spec
                .kubedown
                .iter()
                .map(|(c, d)| KubeDown {
                    cluster: c.clone(),
                    duration: *d,
                    started: None,
                    dropped: 0,
                })
                .collect(),
            spec,
            rng,
            injected: 0,
            endpoints: BTreeMap::new(),
        }
    }

    /// Decide the fault for this request to `endpoint` (e.g. `eks POST UpdateClusterVersion`).
    /// Kinds set to `first` strike the first requests to each endpoint, one kind per
    /// request in `Fault::ALL` order; then the random kinds draw, from the RNG only for
    /// non-zero rates, so a seed gives the same sequence for the same requests.
    pub fn roll(&mut self, endpoint: &str) -> Option<Fault> {
        self.roll_among(endpoint, &Fault::ALL)
    }

    /// [`roll`](Self::roll) limited to the kinds in `allowed` (a watch takes no
    /// response-damaging kinds, an eviction no throttling). Endpoints whose key starts
    /// with `kube ` draw from the `kube:` rates, every other from the cloud rates.
    pub fn roll_among(&mut self, endpoint: &str, allowed: &[Fault]) -> Option<Fault> {
        let kube = endpoint.starts_with("kube ");
        let rate = |spec: &FaultSpec, f: Fault| {
            if !allowed.contains(&f) {
                Rate::Random(0.0)
            } else if kube {
                spec.kube_rate(f)
            } else {
                spec.rate(f)
            }
        };
        let rec = self.endpoints.entry(endpoint.to_string()).or_default();
        rec.requests += 1;
        let nth = rec.requests as usize;
        let firsts: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|f| rate(&self.spec, *f) == Rate::First)
            .collect();
        let fault = if nth <= firsts.len() {
            Some(firsts[nth - 1])
        } else {
            Fault::ALL.into_iter().find(|f| match rate(&self.spec, *f) {
                Rate::Random(p) if p > 0.0 => self.rng.random::<f64>() < p,
                _ => false,
            })
        };
        if let Some(f) = fault {
            self.injected += 1;
            if let Some(rec) = self.endpoints.get_mut(endpoint) {
                rec.faults.push(f.key());
            }
        }
        fault
    }

    /// How long a stalled response is held back.
    pub fn stall_for(&self) -> std::time::Duration {
        self.spec.stall_for.unwrap_or(crate::faults::DEFAULT_STALL)
    }

    /// True when `cluster`'s Kubernetes API is gone for this request: an outage that
    /// `eviction` starts (the first eviction) or that started less than its duration ago.
    pub fn kube_down(&mut self, cluster: &str, eviction: bool, now: f64) -> bool {
        let Some(k) = self.kubedown.iter_mut().find(|k| k.cluster == cluster) else {
            return false;
        };
        let started = match k.started {
            Some(t) => t,
            None if eviction => *k.started.insert(now),
            None => return false,
        };
        let down = now < started + k.duration.as_secs_f64();
        if down {
            k.dropped += 1;
        }
        down
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
