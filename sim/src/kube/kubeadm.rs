//! The Kubernetes side of kubeadm clusters: control-plane and worker nodes as kubeadm
//! registers them (role label, control-plane taint), the static pods of every control-plane
//! node as mirror pods, CoreDNS, kube-proxy and the `kubeadm-config` ConfigMap. The admin
//! endpoints (`crate::kubeadm`) move it: `upgrade apply` / `upgrade node` replace static pods,
//! `kubelet-restart` changes a node's kubelet version and blips its readiness.

use serde_json::{json, Value};

use super::nodes::{self, container, ensure_namespace, workload_objects};
use super::util::{self, k8s_time};
use super::{ctrl, KCluster, Kind};
use crate::faults::FaultSpec;
use crate::kubeadm::{
    coredns_version, etcd_version, fmt_version, KubeadmCluster, KubeadmNode, Ver,
};

pub const ROLE_CP: &str = "node-role.kubernetes.io/control-plane";

/// Simulated seconds a restarted kubelet reports NotReady.
pub const KUBELET_RESTART_SECS: f64 = 20.0;

const COMPONENTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

fn v(x: Ver) -> String {
    format!("v{}", fmt_version(x))
}

fn node_ip(kc: &KCluster, name: &str) -> String {
    kc.get(Kind::Node, "", name)
        .and_then(|n| n["status"]["addresses"][0]["address"].as_str())
        .unwrap_or("")
        .to_string()
}

fn create_node(kc: &mut KCluster, n: &KubeadmNode, now: f64) {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
    });
    if n.control_plane {
        labels[ROLE_CP] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
    }
    for (a, b) in &n.labels {
        labels[a] = json!(b);
    }
    let ip = kc.next_ip().replacen("10.0.", "192.168.", 1);
    let t = k8s_time(now);
    let mut spec = json!({ "podCIDR": format!("10.244.{}.0/24", util::fnv(&n.name) % 250),
        "podCIDRs": [format!("10.244.{}.0/24", util::fnv(&n.name) % 250)] });
    if n.control_plane {
        spec["taints"] = json!([{ "key": ROLE_CP, "effect": "NoSchedule" }]);
    }
    let ver = v(n.version);
    let node = json!({
        "metadata": {
            "name": n.name,
            "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            }
        },
        "spec": spec,
        "status": {
            "capacity": { "cpu": "4", "memory": "8137604Ki", "pods": "110", "ephemeral-storage": "61611820Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0" },
            "allocatable": { "cpu": "4", "memory": "8035204Ki", "pods": "110", "ephemeral-storage": "56781979652", "hugepages-1Gi": "0", "hugepages-2Mi": "0" },
            "conditions": crate::kube::nodes::node_conditions(&t, crate::kube::nodes::ready_condition(&t)),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": n.name }
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": format!("{:016x}{:016x}", util::fnv(&n.name), util::fnv(&ip)),
                "systemUUID": uuid::Uuid::new_v4().to_string(),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "6.1.0-25-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": ver,
                "kubeProxyVersion": ver,
                "operatingSystem": "linux",
                "architecture": "amd64"
            },
            "images": []
        }
    });
    kc.create(Kind::Node, node, now);
}

/// The mirror pod of one static pod of control-plane `node`, Running.
fn static_pod(kc: &mut KCluster, node: &str, comp: &str, version: Ver, now: f64) -> Value {
    let image = if comp == "etcd" {
        format!("registry.k8s.io/etcd:{}", etcd_version(version))
    } else {
        format!("registry.k8s.io/{comp}:{}", v(version))
    };
    let ip = node_ip(kc, node);
    let node_uid = kc
        .get(Kind::Node, "", node)
        .map(|n| util::uid(n).to_string())
        .unwrap_or_default();
    let hash = format!(
        "{:032x}",
        u128::from(util::fnv(&format!("{node}/{comp}/{image}"))) << 64
            | u128::from(util::fnv(&image))
    );
    let (cpu, mem) = match comp {
        "kube-apiserver" => ("250m", None),
        "kube-controller-manager" => ("200m", None),
        "kube-scheduler" => ("100m", None),
        _ => ("100m", Some("100Mi")),
    };
    let mut c = container(comp, &image, cpu, mem);
    c["command"] = match comp {
        "etcd" => json!([
            "etcd",
            format!("--advertise-client-urls=https://{ip}:2379"),
            "--data-dir=/var/lib/etcd",
            format!("--name={node}")
        ]),
        "kube-apiserver" => json!([
            "kube-apiserver",
            format!("--advertise-address={ip}"),
            "--secure-port=6443",
            "--service-cluster-ip-range=10.96.0.0/12"
        ]),
        "kube-controller-manager" => json!([
            "kube-controller-manager",
            "--cluster-cidr=10.244.0.0/16",
            "--leader-elect=true"
        ]),
        _ => json!([
            "kube-scheduler",
            "--kubeconfig=/etc/kubernetes/scheduler.conf",
            "--leader-elect=true"
        ]),
    };
    let mut annotations = json!({
        "kubernetes.io/config.hash": hash,
        "kubernetes.io/config.mirror": hash,
        "kubernetes.io/config.seen": k8s_time(now),
        "kubernetes.io/config.source": "file",
    });
    match comp {
        "kube-apiserver" => {
            annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] =
                json!(format!("{ip}:6443"));
        }
        "etcd" => {
            annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] =
                json!(format!("https://{ip}:2379"));
        }
        _ => {}
    }
    let mut spec = json!({
        "nodeName": node,
        "hostNetwork": true,
        "priorityClassName": "system-node-critical",
        "priority": 2_000_001_000,
        "containers": [c],
        "tolerations": [{ "operator": "Exists", "effect": "NoExecute" }],
        "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority",
    });
    ctrl::pod_defaults(&mut spec);
    let t = k8s_time(now);
    let mut pod = json!({
        "metadata": {
            "name": format!("{comp}-{node}"),
            "namespace": "kube-system",
            "labels": { "component": comp, "tier": "control-plane" },
            "annotations": annotations,
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": true }],
        },
        "spec": spec,
        "status": { "phase": "Pending", "qosClass": "Burstable", "hostIP": ip, "hostIPs": [{ "ip": ip }] },
    });
    ctrl::set_running(&mut pod, &ip, &t);
    pod
}

/// Make the static pods of control-plane `node` match its `static_version` (mirror pods whose
/// manifest changed are replaced, as the kubelet does).
pub fn static_pods(kc: &mut KCluster, k: &KubeadmCluster, node: &str, now: f64) {
    let Some(ver) = k
        .node(node)
        .filter(|n| n.control_plane)
        .and_then(|n| n.static_version)
    else {
        return;
    };
    for comp in COMPONENTS {
        let pod = static_pod(kc, node, comp, ver, now);
        let name = util::name(&pod).to_string();
        let image = pod["spec"]["containers"][0]["image"].clone();
        if let Some(old) = kc.get(Kind::Pod, "kube-system", &name) {
            if old["spec"]["containers"][0]["image"] == image {
                continue;
            }
            let old = old.clone();
            kc.event(
                &old,
                "Normal",
                "Killing",
                &format!("Stopping container {comp}"),
                "kubelet",
                now,
            );
            kc.remove(Kind::Pod, "kube-system", &name);
        }
        let p = kc.create(Kind::Pod, pod, now);
        for (reason, msg) in [
            (
                "Pulled",
                format!(
                    "Container image {} already present on machine",
                    image.as_str().unwrap_or("")
                ),
            ),
            ("Created", format!("Created container {comp}")),
            ("Started", format!("Started container {comp}")),
        ] {
            kc.event(&p, "Normal", reason, &msg, "kubelet", now);
        }
    }
    kc.dirty = true;
}

fn cluster_configuration(k: &KubeadmCluster) -> String {
    let api = if k.version.1 >= 31 {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    };
    let endpoint = k
        .nodes
        .iter()
        .find(|n| n.control_plane)
        .map(|n| n.name.as_str())
        .unwrap_or("localhost");
    format!(
        "apiServer: {{}}
apiVersion: {api}
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: {endpoint}:6443
controllerManager: {{}}
dns: {{}}
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: {}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
proxy: {{}}
scheduler: {{}}
",
        v(k.version)
    )
}

fn kubelet_configuration() -> &'static str {
    "apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"
}

fn kube_proxy_ds(version: Ver) -> Value {
    let labels = json!({ "k8s-app": "kube-proxy" });
    json!({
        "metadata": { "name": "kube-proxy", "namespace": "kube-system", "labels": labels.clone(),
            "annotations": { "deprecated.daemonset.template.generation": "1" } },
        "spec": {
            "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "kube-proxy", "image": format!("registry.k8s.io/kube-proxy:{}", v(version)),
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"],
                        "securityContext": { "privileged": true } }],
                    "priorityClassName": "system-node-critical", "hostNetwork": true,
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "serviceAccountName": "kube-proxy",
                    "tolerations": [{ "operator": "Exists" }] } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
            "revisionHistoryLimit": 10
        },
        "status": {}
    })
}

fn coredns_deployment(version: Ver) -> Value {
    let labels = json!({ "k8s-app": "kube-dns" });
    json!({
        "metadata": { "name": "coredns", "namespace": "kube-system", "labels": labels.clone(),
            "annotations": { "deployment.kubernetes.io/revision": "1" } },
        "spec": {
            "replicas": 2, "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels },
                "spec": { "containers": [container("coredns", &format!("registry.k8s.io/coredns/coredns:{}", coredns_version(version)), "100m", Some("70Mi"))],
                    "priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns",
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "tolerations": [ { "key": "CriticalAddonsOnly", "operator": "Exists" },
                                     { "key": ROLE_CP, "effect": "NoSchedule" } ] } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "25%" } },
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

/// Build the cluster's settled state: nodes Ready, static pods, add-ons and world workloads
/// Running.
pub fn populate(kc: &mut KCluster, k: &KubeadmCluster, now: f64) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure_namespace(kc, ns, now);
    }
    for n in &k.nodes {
        create_node(kc, n, now);
    }
    for n in k.nodes.iter().filter(|n| n.control_plane) {
        static_pods(kc, k, &n.name, now);
    }
    kc.create(
        Kind::ConfigMap,
        json!({ "metadata": { "name": "kubeadm-config", "namespace": "kube-system" },
            "data": { "ClusterConfiguration": cluster_configuration(k) } }),
        now,
    );
    kc.create(
        Kind::ConfigMap,
        json!({ "metadata": { "name": "kubelet-config", "namespace": "kube-system",
                "annotations": { "kubeadm.kubernetes.io/component-config.hash": format!("sha256:{:016x}", util::fnv(kubelet_configuration())) } },
            "data": { "kubelet": kubelet_configuration() } }),
        now,
    );
    kc.create(Kind::DaemonSet, kube_proxy_ds(k.version), now);
    kc.create(Kind::Deployment, coredns_deployment(k.version), now);
    for w in &k.workloads {
        ensure_namespace(kc, &w.namespace, now);
        let (kind, obj, pdb) = workload_objects(w);
        kc.create(kind, obj, now);
        if let Some(p) = pdb {
            kc.create(Kind::Pdb, p, now);
        }
    }
    nodes::settle(kc, now);
    kc.record_events = true;
}

/// `kubeadm upgrade apply` succeeded on `node`: its static pods, the kubeadm-config
/// ConfigMap, kube-proxy and CoreDNS follow the cluster version.
pub fn applied(kc: &mut KCluster, k: &KubeadmCluster, node: &str, now: f64) {
    static_pods(kc, k, node, now);
    let cfg = cluster_configuration(k);
    kc.update(Kind::ConfigMap, "kube-system", "kubeadm-config", |c| {
        c["data"]["ClusterConfiguration"] = json!(cfg);
    });
    let image = format!("registry.k8s.io/kube-proxy:{}", v(k.version));
    let ds = kc
        .get(Kind::DaemonSet, "kube-system", "kube-proxy")
        .cloned();
    if let Some(ds) = ds {
        if ds["spec"]["template"]["spec"]["containers"][0]["image"] != image.as_str() {
            let gen = ds["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            kc.update(Kind::DaemonSet, "kube-system", "kube-proxy", |d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
                d["metadata"]["generation"] = json!(gen);
                d["metadata"]["annotations"]["deprecated.daemonset.template.generation"] =
                    json!(gen.to_string());
            });
            // The DaemonSet controller replaces its pods (all at once here).
            let uid = util::uid(&ds).to_string();
            let pods: Vec<String> = kc
                .objs(Kind::Pod)
                .iter()
                .filter(|((ns, _), p)| {
                    ns == "kube-system" && util::controller_of(p).is_some_and(|(_, _, u)| u == uid)
                })
                .map(|((_, n), _)| n.clone())
                .collect();
            for p in pods {
                ctrl::delete_pod(kc, "kube-system", &p, Some(0), now, false);
            }
        }
    }
    let dns = format!(
        "registry.k8s.io/coredns/coredns:{}",
        coredns_version(k.version)
    );
    let cur = kc
        .get(Kind::Deployment, "kube-system", "coredns")
        .map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].clone());
    if cur.is_some_and(|c| c != dns.as_str()) {
        kc.update(Kind::Deployment, "kube-system", "coredns", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(dns);
            let gen = d["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            d["metadata"]["generation"] = json!(gen);
        });
    }
    kc.dirty = true;
}

/// `systemctl restart kubelet` on `node`: the new kubelet reports `version` and the node is
/// NotReady for [`KUBELET_RESTART_SECS`] simulated seconds.
pub fn kubelet_restart(kc: &mut KCluster, node: &str, version: Ver, now: f64) {
    let t = k8s_time(now);
    let ver = v(version);
    let n = kc.update(Kind::Node, "", node, |n| {
        n["status"]["nodeInfo"]["kubeletVersion"] = json!(ver);
        n["status"]["nodeInfo"]["kubeProxyVersion"] = json!(ver);
        if let Some(cs) = n["status"]["conditions"].as_array_mut() {
            for c in cs {
                if c["type"] == "Ready" {
                    *c = json!({ "type": "Ready", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t,
                        "reason": "KubeletNotReady", "message": "container runtime status check may not have completed yet" });
                }
            }
        }
    });
    if let Some(n) = n {
        kc.event(
            &n,
            "Normal",
            "Starting",
            "Starting kubelet.",
            "kubelet",
            now,
        );
        kc.event(
            &n,
            "Normal",
            "NodeNotReady",
            &format!("Node {node} status is now: NodeNotReady"),
            "kubelet",
            now,
        );
    }
    let at = now + kc.wall(KUBELET_RESTART_SECS);
    kc.kubelet_restarts.insert(node.to_string(), at);
    kc.dirty = true;
}

fn kubelet_ready(kc: &mut KCluster, node: &str, now: f64) {
    let t = k8s_time(now);
    let n = kc.update(Kind::Node, "", node, |n| {
        if let Some(cs) = n["status"]["conditions"].as_array_mut() {
            for c in cs {
                if c["type"] == "Ready" {
                    *c = json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t,
                        "reason": "KubeletReady", "message": "kubelet is posting ready status" });
                }
            }
        }
    });
    if let Some(n) = n {
        kc.event(
            &n,
            "Normal",
            "NodeReady",
            &format!("Node {node} status is now: NodeReady"),
            "kubelet",
            now,
        );
    }
    kc.dirty = true;
}

pub fn tick(kc: &mut KCluster, k: &mut KubeadmCluster, faults: &FaultSpec, now: f64) {
    if let Some(e) = &k.endpoint {
        kc.endpoint.clone_from(e);
    }
    nodes::run_timers(kc, faults, now);
    let due: Vec<String> = kc
        .kubelet_restarts
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(n, _)| n.clone())
        .collect();
    for n in due {
        kc.kubelet_restarts.remove(&n);
        kubelet_ready(kc, &n, now);
    }
    nodes::run_controllers(kc, now);
}
