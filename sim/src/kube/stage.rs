//! Putting a world file's staged objects and Helm releases into a cluster's API server.

use serde_json::{json, Value};

use super::api::admit;
use super::nodes::{ensure_namespace, settle};
use super::{KCluster, Kind, KINDS};
use crate::stage::Staging;
use crate::world::Workload;

/// The served kind of a staged object, with its namespace ("" for cluster-scoped kinds,
/// "default" when a namespaced object names none) and name; errors say why it cannot be
/// stored. Runs the same defaulting and validation as a POST, on a copy.
pub fn check_staged(o: &Value, plans_served: bool) -> Result<(Kind, String, String), String> {
    let av = o["apiVersion"].as_str().unwrap_or("");
    let k = o["kind"].as_str().unwrap_or("");
    if av.is_empty() || k.is_empty() {
        return Err("apiVersion and kind are required".into());
    }
    let Some(kind) = KINDS
        .iter()
        .copied()
        .find(|x| x.api_version() == av && x.info().kind == k)
    else {
        let served: Vec<String> = KINDS
            .iter()
            .filter(|x| x.info().kind == k)
            .map(|x| x.api_version().to_string())
            .collect();
        let removed = crate::removed_apis::REMOVED.iter().find(|a| {
            a.kind == k
                && (if a.group.is_empty() {
                    a.version.to_string()
                } else {
                    format!("{}/{}", a.group, a.version)
                }) == av
        });
        if let Some(r) = removed {
            return Err(format!(
                "{av} {k} was removed in Kubernetes 1.{}; store it as {} (an object applied at an old version keeps that version only in its last-applied-configuration annotation and managedFields)",
                r.removed_in,
                if served.is_empty() { r.replacement.unwrap_or("its replacement").to_string() } else { served.join(", ") }
            ));
        }
        return Err(if served.is_empty() {
            format!("{av} {k}: the simulated API server does not serve this kind")
        } else {
            format!(
                "{av} {k}: this version is not served; store it as {} (an object applied at an old version keeps that version only in its last-applied-configuration annotation and managedFields)",
                served.join(", ")
            )
        });
    };
    match kind {
        // Nodes come from node groups / pools / host lists, which the world describes.
        Kind::Node => {
            return Err("Nodes are derived from the cluster's node groups; stage them there".into())
        }
        Kind::Plan | Kind::Crd if !plans_served => {
            return Err(format!(
                "{av} {k}: served only on K3s/RKE2 clusters with the system-upgrade-controller (suc {{ installed = true }})"
            ))
        }
        _ => {}
    }
    let name = o["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(format!("{av} {k}: metadata.name is required"));
    }
    let ns = if kind.info().namespaced {
        o["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    let mut copy = o.clone();
    admit(kind, &mut copy).map_err(|e| format!("{k} {name:?}: {}", e.message))?;
    Ok((kind, ns, name.to_string()))
}

/// `(namespace, kind, name)` of the workloads whose containers crash.
pub fn crash_loop_set(
    workloads: &[Workload],
) -> std::collections::HashSet<(String, String, String)> {
    workloads
        .iter()
        .filter(|w| w.crash_loop)
        .map(|w| (w.namespace.clone(), w.kind.clone(), w.name.clone()))
        .collect()
}

/// Store the staged objects and Helm release Secrets (validated at load) and settle the
/// cluster again, so staged controllers have their pods running. An object named like one
/// the cluster already has (a system workload) replaces it.
pub fn apply(kc: &mut KCluster, st: &Staging, now: f64) {
    if st.objects.is_empty() && st.helm.is_empty() {
        return;
    }
    kc.record_events = false;
    let plans = kc.get(Kind::Crd, "", "plans.upgrade.cattle.io").is_some();
    let objs = st
        .objects
        .iter()
        .cloned()
        .chain(st.helm.iter().map(|r| r.secret()));
    // Namespaces first, so objects in them find them.
    let (namespaces, others): (Vec<Value>, Vec<Value>) =
        objs.partition(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1");
    for mut o in namespaces.into_iter().chain(others) {
        let Ok((kind, ns, name)) = check_staged(&o, plans) else {
            continue;
        };
        if kind.info().namespaced {
            ensure_namespace(kc, &ns, now);
            o["metadata"]["namespace"] = json!(ns);
        }
        if admit(kind, &mut o).is_err() {
            continue;
        }
        match kc.get(kind, &ns, &name).cloned() {
            Some(cur) => {
                o["metadata"]["uid"] = cur["metadata"]["uid"].clone();
                if o["metadata"]["creationTimestamp"].is_null() {
                    o["metadata"]["creationTimestamp"] =
                        cur["metadata"]["creationTimestamp"].clone();
                }
                kc.put(kind, o);
            }
            None => {
                kc.create(kind, o, now);
            }
        }
    }
    settle(kc, now);
    kc.record_events = true;
}
