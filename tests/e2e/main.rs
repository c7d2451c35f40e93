//! End-to-end tests: the real `kup` binary against `kup sim serve` on 127.0.0.1, through
//! the real AWS SDK. One test binary, so the suite shares one build.

mod harness;

#[cfg(feature = "aks")]
mod aks;
mod apply;
mod ci_examples;
mod cli;
mod crash;
mod faults;
mod fleet;
mod generate;
#[cfg(feature = "gke")]
mod gke;
mod hooks;
#[cfg(feature = "k3s")]
mod k3s;
mod kube;
#[cfg(feature = "kubeadm")]
mod kubeadm;
#[cfg(all(feature = "gke", feature = "aks", feature = "k3s"))]
mod markdown;
mod preflight;
#[cfg(all(feature = "gke", feature = "aks", feature = "k3s"))]
mod rehearse;
mod remote_state;
mod safety;
mod saved_plan;
mod secrets;
mod terraform;
mod torture;
