//! Server-side printing: `meta.k8s.io/v1` Table responses, as `kubectl get` requests them.

use serde_json::{json, Value};

use super::util::{self, human_duration, parse_k8s_time};
use super::Kind;

type Col = (&'static str, &'static str, i32);

fn columns(kind: Kind) -> Vec<Col> {
    match kind {
        Kind::Pod => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        Kind::Node => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        Kind::Pdb => vec![
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        Kind::Deployment => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::ReplicaSet => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::StatefulSet => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        Kind::DaemonSet => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::Namespace => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::Job => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "date", 0),
        ],
        Kind::ConfigMap => vec![
            ("Name", "string", 0),
            ("Data", "string", 0),
            ("Age", "date", 0),
        ],
        Kind::ServiceAccount => vec![
            ("Name", "string", 0),
            ("Secrets", "string", 0),
            ("Age", "date", 0),
        ],
        Kind::Crd => vec![("Name", "string", 0), ("Created At", "date", 0)],
        Kind::Secret => vec![
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::Ingress => vec![
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::CronJob => vec![
            ("Name", "string", 0),
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::FlowSchema => vec![
            ("Name", "string", 0),
            ("PriorityLevel", "string", 0),
            ("MatchingPrecedence", "string", 0),
            ("DistinguisherMethod", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::Hpa => vec![
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            ("Age", "string", 0),
        ],
        Kind::Plan => vec![
            ("Name", "string", 0),
            ("Image", "string", 0),
            ("Channel", "string", 0),
            ("Version", "string", 0),
            ("Complete", "string", 0),
            ("Message", "string", 0),
            ("Applying", "string", 1),
            ("Age", "date", 0),
        ],
        Kind::Event => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
    }
}

fn age(o: &Value, now: f64) -> String {
    o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_k8s_time)
        .map(|t| human_duration(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn since(v: &Value, now: f64) -> String {
    v.as_str()
        .and_then(parse_k8s_time)
        .map(|t| human_duration(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn containers(o: &Value) -> (String, String) {
    let cs = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector(o: &Value) -> String {
    super::select::LabelSelector::from_object(&o["spec"]["selector"]).to_string_form()
}

fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn or_na(v: &Value) -> Value {
    match v {
        Value::Null => json!("N/A"),
        Value::Number(n) => json!(n.to_string()),
        other => other.clone(),
    }
}

pub fn pod_status(p: &Value) -> String {
    if !p["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
    // As kubectl's printer: a waiting container's reason (ContainerCreating, CrashLoopBackOff,
    // ErrImagePull, …) replaces the phase, whatever the phase.
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .rev()
                .find_map(|c| c["state"]["waiting"]["reason"].as_str())
        })
        .unwrap_or(phase)
        .to_string()
}

fn cells(kind: Kind, o: &Value, now: f64) -> Vec<Value> {
    let name = json!(util::name(o));
    match kind {
        Kind::Pod => {
            let cs = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = cs
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                json!(age(o, now)),
                json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        Kind::Node => {
            let mut status = if util::node_ready(o) {
                "Ready"
            } else {
                "NotReady"
            }
            .to_string();
            if o["spec"]["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = o["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/")
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                o["status"]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .and_then(|x| x["address"].as_str())
                    .unwrap_or("<none>")
                    .to_string()
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                json!(age(o, now)),
                info["kubeletVersion"].clone(),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                info["osImage"].clone(),
                info["kernelVersion"].clone(),
                info["containerRuntimeVersion"].clone(),
            ]
        }
        Kind::Pdb => vec![
            name,
            or_na(&o["spec"]["minAvailable"]),
            or_na(&o["spec"]["maxUnavailable"]),
            int(&o["status"]["disruptionsAllowed"]),
            json!(age(o, now)),
        ],
        Kind::Deployment => {
            let (c, i) = containers(o);
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            vec![
                name,
                json!(format!(
                    "{}/{want}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0)
                )),
                int(&o["status"]["updatedReplicas"]),
                int(&o["status"]["availableReplicas"]),
                json!(age(o, now)),
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        Kind::ReplicaSet => {
            let (c, i) = containers(o);
            vec![
                name,
                int(&o["spec"]["replicas"]),
                int(&o["status"]["replicas"]),
                int(&o["status"]["readyReplicas"]),
                json!(age(o, now)),
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        Kind::StatefulSet => {
            let (c, i) = containers(o);
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            vec![
                name,
                json!(format!(
                    "{}/{want}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0)
                )),
                json!(age(o, now)),
                json!(c),
                json!(i),
            ]
        }
        Kind::DaemonSet => {
            let (c, i) = containers(o);
            let ns = o["spec"]["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            let st = &o["status"];
            vec![
                name,
                int(&st["desiredNumberScheduled"]),
                int(&st["currentNumberScheduled"]),
                int(&st["numberReady"]),
                int(&st["updatedNumberScheduled"]),
                int(&st["numberAvailable"]),
                json!(ns),
                json!(age(o, now)),
                json!(c),
                json!(i),
                json!(selector(o)),
            ]
        }
        Kind::Namespace => vec![
            name,
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            json!(age(o, now)),
        ],
        Kind::Job => {
            let st = &o["status"];
            let status = if util::condition_true(&st["conditions"], "Complete") {
                "Complete"
            } else if util::condition_true(&st["conditions"], "Failed") {
                "Failed"
            } else {
                "Running"
            };
            let start = st["startTime"].as_str().and_then(parse_k8s_time);
            let end = st["completionTime"].as_str().and_then(parse_k8s_time);
            let dur = start
                .map(|s| human_duration(end.unwrap_or(now) - s))
                .unwrap_or_default();
            vec![
                name,
                json!(status),
                json!(format!("{}/1", st["succeeded"].as_i64().unwrap_or(0))),
                json!(dur),
                json!(age(o, now)),
            ]
        }
        Kind::ServiceAccount => vec![name, json!(0), json!(age(o, now))],
        Kind::ConfigMap => vec![
            name,
            json!(
                o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len())
            ),
            json!(age(o, now)),
        ],
        Kind::Crd => vec![name, o["metadata"]["creationTimestamp"].clone()],
        Kind::Secret => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            json!(age(o, now)),
        ],
        Kind::Ingress => {
            let rules = o["spec"]["rules"].as_array().cloned().unwrap_or_default();
            let hosts: Vec<&str> = rules.iter().filter_map(|r| r["host"].as_str()).collect();
            let addrs: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                        .collect()
                })
                .unwrap_or_default();
            let ports = if o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                name,
                json!(o["spec"]["ingressClassName"].as_str().unwrap_or("<none>")),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addrs.join(",")),
                json!(ports),
                json!(age(o, now)),
            ]
        }
        Kind::CronJob => {
            let (names, images) = containers(&o["spec"]["jobTemplate"]);
            vec![
                name,
                o["spec"]["schedule"].clone(),
                json!(o["spec"]["timeZone"].as_str().unwrap_or("<none>")),
                json!(o["spec"]["suspend"].as_bool().unwrap_or(false)),
                json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
                json!(o["status"]["lastScheduleTime"]
                    .as_str()
                    .and_then(parse_k8s_time)
                    .map_or("<none>".to_string(), |t| human_duration(now - t))),
                json!(age(o, now)),
                json!(names),
                json!(images),
                json!("<none>"),
            ]
        }
        Kind::FlowSchema => vec![
            name,
            json!(o["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .unwrap_or("")),
            json!(o["spec"]["matchingPrecedence"]
                .as_i64()
                .unwrap_or(1000)
                .to_string()),
            json!(o["spec"]["distinguisherMethod"]["type"]
                .as_str()
                .unwrap_or("<none>")),
            json!(age(o, now)),
        ],
        Kind::Hpa => {
            let t = &o["spec"]["scaleTargetRef"];
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    t["kind"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or("")
                )),
                json!("<unknown>"),
                json!(o["spec"]["minReplicas"].as_i64().unwrap_or(1).to_string()),
                int(&o["spec"]["maxReplicas"]),
                int(&o["status"]["currentReplicas"]),
                json!(age(o, now)),
            ]
        }
        Kind::Plan => {
            let conds = o["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let complete = conds
                .iter()
                .find(|c| c["type"] == "Complete")
                .map(|c| c["status"].clone())
                .unwrap_or(json!(""));
            let msg = conds
                .iter()
                .filter_map(|c| c["message"].as_str().filter(|m| !m.is_empty()))
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                name,
                json!(o["spec"]["upgrade"]["image"].as_str().unwrap_or("")),
                json!(o["spec"]["channel"].as_str().unwrap_or("")),
                json!(o["spec"]["version"].as_str().unwrap_or("")),
                complete,
                json!(msg),
                json!(o["status"]["applying"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()),
                json!(age(o, now)),
            ]
        }
        Kind::Event => {
            let io = &o["involvedObject"];
            vec![
                json!(since(&o["lastTimestamp"], now)),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    io["kind"].as_str().unwrap_or("").to_lowercase(),
                    io["name"].as_str().unwrap_or("")
                )),
                json!(io["fieldPath"].as_str().unwrap_or("")),
                json!(o["source"]["component"].as_str().unwrap_or("")),
                o["message"].clone(),
                json!(since(&o["firstTimestamp"], now)),
                json!(o["count"].as_i64().unwrap_or(1).to_string()),
                name,
            ]
        }
    }
}

/// Render `objs` as a Table. `include` is the `includeObject` parameter.
pub fn table(kind: Kind, objs: &[Value], include: &str, now: f64, meta: Value) -> Value {
    let defs: Vec<Value> = columns(kind)
        .iter()
        .map(|(n, t, p)| {
            let mut d = json!({ "name": n, "type": t, "format": "", "description": n, "priority": p });
            if *n == "Name" {
                d["format"] = json!("name");
                d["description"] = json!("Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names");
            }
            d
        })
        .collect();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cells(kind, o, now) });
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"] })
                }
            }
            row
        })
        .collect();
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows })
}
