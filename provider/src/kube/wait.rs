//! Waiting for a node group's nodes to be Ready at a kubelet minor, with a watch.

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kup_engine::{Minor, Version};

use super::{convert, KubeNodeOps};
use crate::{ErrorKind, ProviderError};

/// Why a node does not count yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Late {
    NotReady,
    Version(String),
    Deleting,
}

/// `None` when the node is Ready at `minor` and not being deleted.
pub(crate) fn lateness(node: &Node, minor: Minor) -> Option<Late> {
    if node.metadata.deletion_timestamp.is_some() {
        return Some(Late::Deleting);
    }
    let raw = convert::kubelet_version_raw(node).unwrap_or("");
    match raw.parse::<Version>() {
        Ok(v) if v.minor() == minor => {}
        _ => {
            return Some(Late::Version(if raw.is_empty() {
                "no kubelet version yet".into()
            } else {
                raw.to_string()
            }))
        }
    }
    if !convert::node_ready(node) {
        return Some(Late::NotReady);
    }
    None
}

/// The message for a timeout: which nodes are late and why, and how many never appeared.
pub(crate) fn late_message(
    node_group: &str,
    count: usize,
    minor: Minor,
    timeout: Duration,
    nodes: &BTreeMap<String, Node>,
) -> String {
    let mut ready = 0usize;
    let mut late = Vec::new();
    for (name, n) in nodes {
        match lateness(n, minor) {
            None => ready += 1,
            Some(Late::NotReady) => late.push(format!("{name} (NotReady)")),
            Some(Late::Deleting) => late.push(format!("{name} (being deleted)")),
            Some(Late::Version(v)) => late.push(format!("{name} (kubelet {v}, expected {minor})")),
        }
    }
    let mut parts = vec![format!(
        "{ready} of {count} nodes of node group `{node_group}` are Ready at kubelet {minor} \
         after {}",
        humantime::format_duration(timeout)
    )];
    if !late.is_empty() {
        parts.push(format!("late: {}", late.join(", ")));
    }
    if nodes.len() < count {
        let missing = count - nodes.len();
        parts.push(format!(
            "missing: {missing} node{} not registered yet",
            if missing == 1 { "" } else { "s" }
        ));
    }
    parts.join("; ")
}

pub(crate) async fn nodes_ready(
    ops: &KubeNodeOps,
    node_group: &str,
    count: usize,
    minor: Minor,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let deadline = Instant::now() + timeout;
    let client = ops.client().await?;
    let api: Api<Node> = Api::all(client);
    let cfg =
        watcher::Config::default().labels(&format!("{}={node_group}", ops.node_group_label()));
    let mut stream = pin!(watcher::watcher(api, cfg).default_backoff());
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut buffer: BTreeMap<String, Node> = BTreeMap::new();
    let mut ready = false;
    let mut last_error: Option<String> = None;
    loop {
        if ready
            && nodes
                .values()
                .filter(|n| lateness(n, minor).is_none())
                .count()
                >= count
        {
            return Ok(());
        }
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Init)) => buffer.clear(),
                Some(Ok(Event::InitApply(n))) => {
                    buffer.insert(n.metadata.name.clone().unwrap_or_default(), n);
                }
                Some(Ok(Event::InitDone)) => {
                    nodes = std::mem::take(&mut buffer);
                    ready = true;
                }
                Some(Ok(Event::Apply(n))) => {
                    nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                }
                Some(Ok(Event::Delete(n))) => {
                    nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                }
                Some(Err(e)) => {
                    tracing::debug!(node_group, error = %e, "node watch failed, restarting");
                    last_error = Some(e.to_string());
                }
                None => {
                    return Err(ProviderError::new(
                        ErrorKind::Transient,
                        format!("the watch on the nodes of `{node_group}` ended ({})", ops.target()),
                    ))
                }
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                let mut message = late_message(node_group, count, minor, timeout, &nodes);
                if !ready {
                    message = format!(
                        "could not list the nodes of node group `{node_group}` within {} ({})",
                        humantime::format_duration(timeout),
                        last_error.unwrap_or_else(|| "no answer from the API server".into())
                    );
                }
                return Err(ProviderError::new(ErrorKind::Other, format!("{message} ({})", ops.target()))
                    .with_code("NodesNotReady"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, version: &str, ready: bool) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {
                "nodeInfo": {"kubeletVersion": version, "architecture": "", "bootID": "",
                    "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn late_nodes_are_named_with_the_reason() {
        let m = Minor::new(1, 29);
        let mut nodes = BTreeMap::new();
        for n in [
            node("a", "v1.29.3-eks-1", true),
            node("b", "v1.29.3-eks-1", false),
            node("c", "v1.28.9", true),
        ] {
            nodes.insert(n.metadata.name.clone().unwrap(), n);
        }
        assert_eq!(lateness(&nodes["a"], m), None);
        assert_eq!(lateness(&nodes["b"], m), Some(Late::NotReady));
        let msg = late_message("green", 4, m, Duration::from_secs(90), &nodes);
        assert_eq!(
            msg,
            "1 of 4 nodes of node group `green` are Ready at kubelet 1.29 after 1m 30s; \
             late: b (NotReady), c (kubelet v1.28.9, expected 1.29); \
             missing: 1 node not registered yet"
        );
    }
}
