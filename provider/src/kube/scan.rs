//! What the pre-flight and post-flight checks read in a cluster: `/readyz`, Deployments
//! and StatefulSets, objects whose applied apiVersion the upgrade removes, and the smoke
//! pod.
//!
//! Objects at removed APIs are found the ways pluto and kubent find them: the apiVersion in
//! `kubectl.kubernetes.io/last-applied-configuration`, the apiVersion each field manager
//! wrote with (`managedFields`), and the manifests of Helm 3 releases (Secrets of type
//! `helm.sh/release.v1`: base64 of gzipped JSON). The apiserver serves every object at its
//! current version, so listing alone never shows an old one.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::Discovery;
use kup_engine::kube::{ClusterScan, Component, KubeWorkload};
use kup_engine::removed_apis::{removal, ApiUse, REMOVED_APIS};

use super::{list_all, retrying, KubeNodeOps};
use crate::{ErrorKind, ProviderError};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl KubeNodeOps {
    pub async fn read_scan(&self) -> Result<ClusterScan, ProviderError> {
        let mut gaps = Vec::new();
        let mut scan = ClusterScan {
            not_ready: forbidden_is_gap(self.readyz().await, "reading /readyz", &mut gaps)?
                .flatten(),
            ..ClusterScan::default()
        };
        scan.workloads = forbidden_is_gap(
            self.read_workloads().await,
            "listing Deployments and StatefulSets",
            &mut gaps,
        )?
        .unwrap_or_default();
        scan.components = forbidden_is_gap(
            self.components().await,
            "listing kube-system's Deployments and the DaemonSets",
            &mut gaps,
        )?
        .unwrap_or_default();
        let (uses, applied_gaps) = self.applied_api_uses().await?;
        scan.api_uses = uses;
        gaps.extend(applied_gaps);
        let (helm, helm_gaps) = self.helm_api_uses().await?;
        scan.api_uses.extend(helm);
        gaps.extend(helm_gaps);
        scan.gaps = gaps;
        Ok(scan)
    }

    /// The failing `/readyz` checks (`[-]…` lines), `None` when ready.
    async fn readyz(&self) -> Result<Option<String>, ProviderError> {
        let client = self.client().await?;
        let req = http::Request::get("/readyz?verbose")
            .body(Vec::new())
            .expect("static request");
        match client.request_text(req).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code >= 500 => {
                let failing: Vec<&str> = s
                    .message
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("[-]"))
                    .collect();
                Ok(Some(if failing.is_empty() {
                    format!("HTTP {}: {}", s.code, s.message.trim())
                } else {
                    failing.join(", ")
                }))
            }
            Err(e) => Err(self.err(e, "reading /readyz")),
        }
    }

    /// Deployments and StatefulSets with their replicas (also what the post-flight check
    /// polls, without the rest of the scan).
    pub async fn read_workloads(&self) -> Result<Vec<KubeWorkload>, ProviderError> {
        let client = self.client().await?;
        let deployments: Api<Deployment> = Api::all(client.clone());
        let statefulsets: Api<StatefulSet> = Api::all(client);
        let lp = ListParams::default();
        let (d, s) =
            futures::future::try_join(list_all(&deployments, &lp), list_all(&statefulsets, &lp))
                .await
                .map_err(|e| self.err(e, "listing Deployments and StatefulSets"))?;
        let mut out: Vec<KubeWorkload> = d
            .iter()
            .map(|x| {
                let spec = x.spec.as_ref();
                workload(
                    "Deployment",
                    &x.metadata,
                    spec.and_then(|s| s.replicas),
                    x.status.as_ref().and_then(|s| s.available_replicas),
                    spec.map(|s| &s.template),
                )
            })
            .chain(s.iter().map(|x| {
                let spec = x.spec.as_ref();
                workload(
                    "StatefulSet",
                    &x.metadata,
                    spec.and_then(|s| s.replicas),
                    // Older apiservers report only readyReplicas for StatefulSets.
                    x.status
                        .as_ref()
                        .and_then(|s| s.available_replicas.or(s.ready_replicas)),
                    spec.map(|s| &s.template),
                )
            }))
            .collect();
        out.sort_by_key(|w| w.address());
        Ok(out)
    }

    /// kube-system's Deployments and DaemonSets, and CNI DaemonSets wherever they run
    /// (the Calico operator uses calico-system, Flannel kube-flannel), with their images.
    async fn components(&self) -> Result<Vec<Component>, ProviderError> {
        let client = self.client().await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
        let daemonsets: Api<DaemonSet> = Api::all(client);
        let lp = ListParams::default();
        let (d, s) =
            futures::future::try_join(list_all(&deployments, &lp), list_all(&daemonsets, &lp))
                .await
                .map_err(|e| self.err(e, "listing kube-system's Deployments and DaemonSets"))?;
        let image = |t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
            t.and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        };
        let mut out: Vec<Component> = d
            .iter()
            .map(|x| Component {
                workload: format!("Deployment/{}", x.metadata.name.as_deref().unwrap_or("")),
                image: image(x.spec.as_ref().map(|s| &s.template)),
            })
            .chain(s.iter().map(|x| Component {
                workload: format!("DaemonSet/{}", x.metadata.name.as_deref().unwrap_or("")),
                image: image(x.spec.as_ref().map(|s| &s.template)),
            }))
            .zip(
                d.iter()
                    .map(|x| x.metadata.namespace.clone())
                    .chain(s.iter().map(|x| x.metadata.namespace.clone())),
            )
            .filter(|(c, ns)| ns.as_deref() == Some("kube-system") || c.is_cni())
            .map(|(c, _)| c)
            .collect();
        out.sort_by(|a, b| a.workload.cmp(&b.workload));
        Ok(out)
    }

    /// Objects of every kind some Kubernetes release removed an API of, with the
    /// apiVersion they were applied or written at.
    async fn applied_api_uses(&self) -> Result<(Vec<ApiUse>, Vec<String>), ProviderError> {
        let client = self.client().await?;
        let mut kinds: Vec<(&str, &str)> = REMOVED_APIS
            .iter()
            // Events are written by components, never applied; listing them is costly.
            .filter(|r| r.kind != "Event")
            .map(|r| (r.group, r.kind))
            .collect();
        kinds.sort();
        kinds.dedup();
        let mut groups: Vec<&str> = kinds.iter().map(|(g, _)| *g).collect();
        groups.dedup();
        let discovery = retrying(|| Discovery::new(client.clone()).filter(&groups).run())
            .await
            .map_err(|e| self.err(e, "discovering the served APIs"))?;
        let mut uses = Vec::new();
        let mut gaps = Vec::new();
        for (group, kind) in kinds {
            let Some((ar, caps)) = discovery.get(group).and_then(|g| g.recommended_kind(kind))
            else {
                continue; // not served in this cluster: nothing can be stored at it
            };
            // Reviews (TokenReview, SubjectAccessReview…) are only ever created.
            if !caps.supports_operation(kube::discovery::verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let objects = match list_all(&api, &ListParams::default()).await {
                Ok(o) => o,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => continue,
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    gaps.push(format!("listing {} is forbidden", ar.plural));
                    continue;
                }
                Err(e) if super::is_transient(&e) => {
                    return Err(self.err(e, &format!("listing {}", ar.plural)))
                }
                Err(e) => {
                    gaps.push(format!("listing {} failed: {e}", ar.plural));
                    continue;
                }
            };
            for o in objects {
                uses.extend(object_api_uses(&o, &ar.api_version, kind));
            }
        }
        Ok((uses, gaps))
    }

    /// The objects in the newest revision of every Helm 3 release.
    async fn helm_api_uses(&self) -> Result<(Vec<ApiUse>, Vec<String>), ProviderError> {
        let client = self.client().await?;
        let secrets: Api<Secret> = Api::all(client);
        let lp = ListParams::default().labels("owner=helm");
        let list = match list_all(&secrets, &lp).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Ok((
                    Vec::new(),
                    vec!["listing Secrets (Helm releases) is forbidden".into()],
                ))
            }
            Err(e) => return Err(self.err(e, "listing Helm release Secrets")),
        };
        // (namespace, release) → (revision, secret)
        let mut newest: BTreeMap<(String, String), (u64, &Secret)> = BTreeMap::new();
        for s in &list {
            if s.type_.as_deref() != Some("helm.sh/release.v1") {
                continue;
            }
            let labels = s.metadata.labels.clone().unwrap_or_default();
            let (Some(name), Some(rev)) = (
                labels.get("name"),
                labels.get("version").and_then(|v| v.parse::<u64>().ok()),
            ) else {
                continue;
            };
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let e = newest.entry((ns, name.clone())).or_insert((rev, s));
            if rev > e.0 {
                *e = (rev, s);
            }
        }
        let mut uses = Vec::new();
        let mut gaps = Vec::new();
        for ((ns, name), (rev, secret)) in newest {
            let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
                continue;
            };
            match decode_helm_release(&data.0) {
                Ok(release) => {
                    let source = format!("Helm release {ns}/{name} revision {rev}");
                    let manifest = release["manifest"].as_str().unwrap_or("");
                    match kup_engine::removed_apis::objects_in_manifest(&source, manifest) {
                        // Helm installs namespaced objects without a namespace into the
                        // release's, so they match what the cluster shows.
                        Ok(objs) => uses.extend(objs.into_iter().map(|mut u| {
                            if u.namespace.is_none() && !is_cluster_scoped(&u.kind) {
                                u.namespace = Some(ns.clone());
                            }
                            u
                        })),
                        Err(e) => gaps.push(format!("cannot read {e}")),
                    }
                }
                Err(e) => gaps.push(format!("cannot decode Helm release {ns}/{name}: {e}")),
            }
        }
        Ok((uses, gaps))
    }

    /// Create a pod, wait for it to run and be Ready, delete it.
    pub async fn run_smoke_pod(
        &self,
        namespace: &str,
        name: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<Duration, ProviderError> {
        let client = self.client().await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let what = format!("smoke pod {namespace}/{name}");
        // A pod left by an interrupted run is replaced, so the check is fresh.
        match pods
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => self.wait_gone(&pods, name, timeout).await?,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(self.err(e, &format!("removing the old {what}"))),
        }
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": { "app.kubernetes.io/managed-by": "kup", "app.kubernetes.io/name": "kup-smoke" }
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                // Admitted by Pod Security "restricted" namespaces too.
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": 65535,
                    "seccompProfile": { "type": "RuntimeDefault" }
                },
                "containers": [{
                    "name": "smoke",
                    "image": image,
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": { "drop": ["ALL"] }
                    },
                    "resources": { "requests": { "cpu": "10m", "memory": "16Mi" },
                                   "limits": { "cpu": "10m", "memory": "16Mi" } }
                }]
            }
        }))
        .expect("a valid Pod");
        let pp = PostParams::default();
        match retrying(|| pods.create(&pp, &pod)).await {
            Ok(_) => {}
            // A retry after an answer that was lost (a reset, a cut body): the first
            // attempt created it.
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {}
            Err(e) => return Err(self.err(e, &format!("creating the {what}"))),
        }
        let outcome = self.wait_running(&pods, name, timeout).await;
        let dp = DeleteParams::default().grace_period(0);
        let cleanup = retrying(|| pods.delete(name, &dp))
            .await
            .map(|_| ())
            .or_else(|e| match e {
                kube::Error::Api(s) if s.code == 404 => Ok(()),
                e => Err(self.err(e, &format!("deleting the {what}"))),
            });
        let took = outcome?;
        cleanup?;
        Ok(took)
    }

    async fn wait_running(
        &self,
        pods: &Api<Pod>,
        name: &str,
        timeout: Duration,
    ) -> Result<Duration, ProviderError> {
        let started = Instant::now();
        let mut last = String::from("not created yet");
        while started.elapsed() < timeout {
            let p = retrying(|| pods.get(name))
                .await
                .map_err(|e| self.err(e, &format!("reading smoke pod {name}")))?;
            let status = p.status.as_ref();
            let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if phase == "Running" && ready {
                return Ok(started.elapsed());
            }
            if phase == "Failed" || phase == "Succeeded" {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("the smoke pod ended ({phase}) instead of running"),
                ));
            }
            let converted = super::pod_from(&p).ok();
            last = match converted {
                Some(k) => match (k.waiting_reason, k.unschedulable) {
                    (Some(w), _) => format!("{phase}, container waiting: {w}"),
                    (None, Some(u)) => format!("{phase}, not scheduled: {u}"),
                    _ => phase,
                },
                None => phase,
            };
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(ProviderError::new(
            ErrorKind::Other,
            format!(
                "the smoke pod did not run within {} ({last})",
                humantime::format_duration(timeout)
            ),
        ))
    }

    async fn wait_gone(
        &self,
        pods: &Api<Pod>,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            match pods.get_opt(name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(e) => return Err(self.err(e, &format!("reading smoke pod {name}"))),
            }
        }
        Err(ProviderError::new(
            ErrorKind::Other,
            format!("the old smoke pod {name} is still there after being deleted"),
        ))
    }
}

/// A Deployment or StatefulSet as the checks see it (1 replica when unset, as the
/// apiserver defaults it).
fn workload(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    replicas: Option<i32>,
    available: Option<i32>,
    template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> KubeWorkload {
    KubeWorkload {
        namespace: meta.namespace.clone().unwrap_or_default(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        replicas: replicas.unwrap_or(1),
        available: available.unwrap_or(0),
        pod_labels: template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
    }
}

/// The read's outcome, with "forbidden" turned into a gap in the checks (`Ok(None)`).
fn forbidden_is_gap<T>(
    r: Result<T, ProviderError>,
    what: &str,
    gaps: &mut Vec<String>,
) -> Result<Option<T>, ProviderError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::Auth => {
            gaps.push(format!("{what} is forbidden"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Kinds that live outside namespaces (those a Helm chart can carry, and every kind of
/// the removed-API table that is cluster-scoped).
fn is_cluster_scoped(kind: &str) -> bool {
    const CLUSTER: &[&str] = &[
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    ];
    CLUSTER.contains(&kind)
}

/// The uses of removed APIs one stored object shows: its last-applied apiVersion and the
/// apiVersion of each field manager's writes.
fn object_api_uses(o: &DynamicObject, served: &str, kind: &str) -> Vec<ApiUse> {
    let mut out = Vec::new();
    let namespace = o.metadata.namespace.clone();
    let name = o.metadata.name.clone().unwrap_or_default();
    let mut add = |api_version: &str, source: String| {
        if api_version != served && removal(api_version, kind).is_some() {
            out.push(ApiUse {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            });
        }
    };
    if let Some(text) = o
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED))
    {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            if let Some(av) = v["apiVersion"].as_str() {
                add(av, "last-applied-configuration".into());
            }
        }
    }
    for mf in o.metadata.managed_fields.iter().flatten() {
        if let Some(av) = &mf.api_version {
            add(
                av,
                format!(
                    "managedFields of {}",
                    mf.manager.as_deref().unwrap_or("an unnamed manager")
                ),
            );
        }
    }
    out
}

/// A Helm 3 release as stored in its Secret's `release` key (the Secret's own base64 is
/// already undone): base64 text of gzipped JSON (older Helm 3 releases: of plain JSON).
pub fn decode_helm_release(data: &[u8]) -> Result<serde_json::Value, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim_ascii())
        .map_err(|e| format!("not base64: {e}"))?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("not gzip: {e}"))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|e| format!("not a release: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn helm_releases_decode_gzipped_and_plain() {
        let release = serde_json::json!({"name": "shop", "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(release.to_string().as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        assert_eq!(decode_helm_release(b64.as_bytes()).unwrap(), release);
        let plain = base64::engine::general_purpose::STANDARD.encode(release.to_string());
        assert_eq!(decode_helm_release(plain.as_bytes()).unwrap(), release);
        assert!(decode_helm_release(b"%%%")
            .unwrap_err()
            .contains("not base64"));
    }

    #[test]
    fn last_applied_and_managed_fields_show_old_versions() {
        let o: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {
                "name": "shop", "namespace": "web",
                "annotations": { LAST_APPLIED: "{\"apiVersion\":\"networking.k8s.io/v1beta1\",\"kind\":\"Ingress\"}" },
                "managedFields": [
                    { "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "networking.k8s.io/v1beta1" },
                    { "manager": "ingress-controller", "operation": "Update", "apiVersion": "networking.k8s.io/v1" }
                ]
            }
        }))
        .unwrap();
        let uses = object_api_uses(&o, "networking.k8s.io/v1", "Ingress");
        assert_eq!(uses.len(), 2, "{uses:?}");
        assert_eq!(uses[0].source, "last-applied-configuration");
        assert_eq!(uses[1].source, "managedFields of kubectl-client-side-apply");
        assert!(uses.iter().all(|u| u.object() == "web/Ingress/shop"));
    }
}
