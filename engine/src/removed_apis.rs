//! Kubernetes APIs removed in a minor release, and the objects that still use them.
//!
//! The table is the "Deprecated API Migration Guide" (kubernetes/website
//! `content/en/docs/reference/using-api/deprecation-guide.md`, CC BY 4.0): one row per
//! group/version/kind removed in 1.16, 1.22, 1.25, 1.26, 1.27, 1.29 and 1.32. A test checks
//! every row against the guide's facts as kept in `engine/data/removed-apis.json`.
//!
//! Finding uses is pure: the CLI reads manifest files and hands their text here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::version::Minor;

/// One removed group/version/kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovedApi {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub removed_in: Minor,
    /// The group/version to migrate to (`None`: the API is gone without one, e.g.
    /// PodSecurityPolicy).
    pub replacement: Option<&'static str>,
}

impl RemovedApi {
    /// `group/version` as manifests write it (`v1` style for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const REMOVED_APIS: &[RemovedApi] = &[
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta3",
        kind: "FlowSchema",
        removed_in: Minor::new(1, 32),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1"),
    },
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta3",
        kind: "PriorityLevelConfiguration",
        removed_in: Minor::new(1, 32),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1"),
    },
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta2",
        kind: "FlowSchema",
        removed_in: Minor::new(1, 29),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1"),
    },
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta2",
        kind: "PriorityLevelConfiguration",
        removed_in: Minor::new(1, 29),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1"),
    },
    RemovedApi {
        group: "storage.k8s.io",
        version: "v1beta1",
        kind: "CSIStorageCapacity",
        removed_in: Minor::new(1, 27),
        replacement: Some("storage.k8s.io/v1"),
    },
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta1",
        kind: "FlowSchema",
        removed_in: Minor::new(1, 26),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1beta2"),
    },
    RemovedApi {
        group: "flowcontrol.apiserver.k8s.io",
        version: "v1beta1",
        kind: "PriorityLevelConfiguration",
        removed_in: Minor::new(1, 26),
        replacement: Some("flowcontrol.apiserver.k8s.io/v1beta2"),
    },
    RemovedApi {
        group: "autoscaling",
        version: "v2beta2",
        kind: "HorizontalPodAutoscaler",
        removed_in: Minor::new(1, 26),
        replacement: Some("autoscaling/v2"),
    },
    RemovedApi {
        group: "batch",
        version: "v1beta1",
        kind: "CronJob",
        removed_in: Minor::new(1, 25),
        replacement: Some("batch/v1"),
    },
    RemovedApi {
        group: "discovery.k8s.io",
        version: "v1beta1",
        kind: "EndpointSlice",
        removed_in: Minor::new(1, 25),
        replacement: Some("discovery.k8s.io/v1"),
    },
    RemovedApi {
        group: "events.k8s.io",
        version: "v1beta1",
        kind: "Event",
        removed_in: Minor::new(1, 25),
        replacement: Some("events.k8s.io/v1"),
    },
    RemovedApi {
        group: "autoscaling",
        version: "v2beta1",
        kind: "HorizontalPodAutoscaler",
        removed_in: Minor::new(1, 25),
        replacement: Some("autoscaling/v2"),
    },
    RemovedApi {
        group: "policy",
        version: "v1beta1",
        kind: "PodDisruptionBudget",
        removed_in: Minor::new(1, 25),
        replacement: Some("policy/v1"),
    },
    RemovedApi {
        group: "policy",
        version: "v1beta1",
        kind: "PodSecurityPolicy",
        removed_in: Minor::new(1, 25),
        replacement: None,
    },
    RemovedApi {
        group: "node.k8s.io",
        version: "v1beta1",
        kind: "RuntimeClass",
        removed_in: Minor::new(1, 25),
        replacement: Some("node.k8s.io/v1"),
    },
    RemovedApi {
        group: "admissionregistration.k8s.io",
        version: "v1beta1",
        kind: "MutatingWebhookConfiguration",
        removed_in: Minor::new(1, 22),
        replacement: Some("admissionregistration.k8s.io/v1"),
    },
    RemovedApi {
        group: "admissionregistration.k8s.io",
        version: "v1beta1",
        kind: "ValidatingWebhookConfiguration",
        removed_in: Minor::new(1, 22),
        replacement: Some("admissionregistration.k8s.io/v1"),
    },
    RemovedApi {
        group: "apiextensions.k8s.io",
        version: "v1beta1",
        kind: "CustomResourceDefinition",
        removed_in: Minor::new(1, 22),
        replacement: Some("apiextensions.k8s.io/v1"),
    },
    RemovedApi {
        group: "apiregistration.k8s.io",
        version: "v1beta1",
        kind: "APIService",
        removed_in: Minor::new(1, 22),
        replacement: Some("apiregistration.k8s.io/v1"),
    },
    RemovedApi {
        group: "authentication.k8s.io",
        version: "v1beta1",
        kind: "TokenReview",
        removed_in: Minor::new(1, 22),
        replacement: Some("authentication.k8s.io/v1"),
    },
    RemovedApi {
        group: "authorization.k8s.io",
        version: "v1beta1",
        kind: "LocalSubjectAccessReview",
        removed_in: Minor::new(1, 22),
        replacement: Some("authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "authorization.k8s.io",
        version: "v1beta1",
        kind: "SelfSubjectAccessReview",
        removed_in: Minor::new(1, 22),
        replacement: Some("authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "authorization.k8s.io",
        version: "v1beta1",
        kind: "SubjectAccessReview",
        removed_in: Minor::new(1, 22),
        replacement: Some("authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "authorization.k8s.io",
        version: "v1beta1",
        kind: "SelfSubjectRulesReview",
        removed_in: Minor::new(1, 22),
        replacement: Some("authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "certificates.k8s.io",
        version: "v1beta1",
        kind: "CertificateSigningRequest",
        removed_in: Minor::new(1, 22),
        replacement: Some("certificates.k8s.io/v1"),
    },
    RemovedApi {
        group: "coordination.k8s.io",
        version: "v1beta1",
        kind: "Lease",
        removed_in: Minor::new(1, 22),
        replacement: Some("coordination.k8s.io/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "Ingress",
        removed_in: Minor::new(1, 22),
        replacement: Some("networking.k8s.io/v1"),
    },
    RemovedApi {
        group: "networking.k8s.io",
        version: "v1beta1",
        kind: "Ingress",
        removed_in: Minor::new(1, 22),
        replacement: Some("networking.k8s.io/v1"),
    },
    RemovedApi {
        group: "networking.k8s.io",
        version: "v1beta1",
        kind: "IngressClass",
        removed_in: Minor::new(1, 22),
        replacement: Some("networking.k8s.io/v1"),
    },
    RemovedApi {
        group: "rbac.authorization.k8s.io",
        version: "v1beta1",
        kind: "ClusterRole",
        removed_in: Minor::new(1, 22),
        replacement: Some("rbac.authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "rbac.authorization.k8s.io",
        version: "v1beta1",
        kind: "ClusterRoleBinding",
        removed_in: Minor::new(1, 22),
        replacement: Some("rbac.authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "rbac.authorization.k8s.io",
        version: "v1beta1",
        kind: "Role",
        removed_in: Minor::new(1, 22),
        replacement: Some("rbac.authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "rbac.authorization.k8s.io",
        version: "v1beta1",
        kind: "RoleBinding",
        removed_in: Minor::new(1, 22),
        replacement: Some("rbac.authorization.k8s.io/v1"),
    },
    RemovedApi {
        group: "scheduling.k8s.io",
        version: "v1beta1",
        kind: "PriorityClass",
        removed_in: Minor::new(1, 22),
        replacement: Some("scheduling.k8s.io/v1"),
    },
    RemovedApi {
        group: "storage.k8s.io",
        version: "v1beta1",
        kind: "CSIDriver",
        removed_in: Minor::new(1, 22),
        replacement: Some("storage.k8s.io/v1"),
    },
    RemovedApi {
        group: "storage.k8s.io",
        version: "v1beta1",
        kind: "CSINode",
        removed_in: Minor::new(1, 22),
        replacement: Some("storage.k8s.io/v1"),
    },
    RemovedApi {
        group: "storage.k8s.io",
        version: "v1beta1",
        kind: "StorageClass",
        removed_in: Minor::new(1, 22),
        replacement: Some("storage.k8s.io/v1"),
    },
    RemovedApi {
        group: "storage.k8s.io",
        version: "v1beta1",
        kind: "VolumeAttachment",
        removed_in: Minor::new(1, 22),
        replacement: Some("storage.k8s.io/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "NetworkPolicy",
        removed_in: Minor::new(1, 16),
        replacement: Some("networking.k8s.io/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "DaemonSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta2",
        kind: "DaemonSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "Deployment",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta1",
        kind: "Deployment",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta2",
        kind: "Deployment",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta1",
        kind: "StatefulSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta2",
        kind: "StatefulSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "ReplicaSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta1",
        kind: "ReplicaSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "apps",
        version: "v1beta2",
        kind: "ReplicaSet",
        removed_in: Minor::new(1, 16),
        replacement: Some("apps/v1"),
    },
    RemovedApi {
        group: "extensions",
        version: "v1beta1",
        kind: "PodSecurityPolicy",
        removed_in: Minor::new(1, 16),
        replacement: Some("policy/v1beta1"),
    },
];

/// The removal of `api_version` + `kind`, if that API was removed.
pub fn removal(api_version: &str, kind: &str) -> Option<&'static RemovedApi> {
    REMOVED_APIS
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// An object written at some apiVersion, and where it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiUse {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Where: `k8s/ingress.yaml`, or how it was found in the cluster.
    pub source: String,
}

impl ApiUse {
    /// `namespace/Kind/name` (or `Kind/name`).
    pub fn object(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// Every Kubernetes object in a manifest file (YAML with `---` documents, or JSON; `List`
/// kinds are opened), or why the file could not be read as manifests.
pub fn objects_in_manifest(source: &str, text: &str) -> Result<Vec<ApiUse>, String> {
    let docs: Vec<serde_json::Value> = if source.ends_with(".json") {
        vec![serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| format!("{source}: {e}"))?
    };
    let mut out = Vec::new();
    let mut stack: Vec<serde_json::Value> = docs;
    while let Some(doc) = stack.pop() {
        let (Some(api_version), Some(kind)) = (doc["apiVersion"].as_str(), doc["kind"].as_str())
        else {
            continue;
        };
        if kind.ends_with("List") {
            if let Some(items) = doc["items"].as_array() {
                stack.extend(items.iter().cloned());
                continue;
            }
        }
        out.push(ApiUse {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: doc["metadata"]["namespace"].as_str().map(String::from),
            name: doc["metadata"]["name"]
                .as_str()
                .unwrap_or("(no name)")
                .to_string(),
            source: source.to_string(),
        });
    }
    out.reverse();
    Ok(out)
}

/// The uses of an API removed after `from` and no later than `to`, with their removal.
pub fn removed_between(
    uses: &[ApiUse],
    from: Minor,
    to: Minor,
) -> Vec<(&ApiUse, &'static RemovedApi)> {
    uses.iter()
        .filter_map(|u| removal(&u.api_version, &u.kind).map(|r| (u, r)))
        .filter(|(_, r)| r.removed_in > from && r.removed_in <= to)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row matches the migration guide's facts, and every fact has its row.
    #[test]
    fn every_row_matches_the_migration_guide() {
        let facts: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../data/removed-apis.json")).unwrap();
        assert_eq!(facts.len(), REMOVED_APIS.len());
        for f in &facts {
            let api_version = match f["group"].as_str().unwrap() {
                "" => f["version"].as_str().unwrap().to_string(),
                g => format!("{g}/{}", f["version"].as_str().unwrap()),
            };
            let kind = f["kind"].as_str().unwrap();
            let row = removal(&api_version, kind)
                .unwrap_or_else(|| panic!("no row for {api_version} {kind}"));
            assert_eq!(
                row.removed_in.to_string(),
                f["removed_in"].as_str().unwrap(),
                "{api_version} {kind}"
            );
            assert_eq!(
                row.replacement,
                f["replacement"].as_str(),
                "{api_version} {kind}"
            );
        }
    }

    #[test]
    fn manifests_are_read_and_removals_found_per_hop() {
        let text = "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n  namespace: web\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\n  kind: FlowSchema\n  metadata:\n    name: fs\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: ok\n";
        let uses = objects_in_manifest("k8s/app.yaml", text).unwrap();
        assert_eq!(uses.len(), 3, "{uses:?}");
        assert_eq!(uses[0].object(), "web/Ingress/shop");
        let hop = removed_between(&uses, Minor::new(1, 31), Minor::new(1, 32));
        assert_eq!(hop.len(), 1);
        assert_eq!(hop[0].0.name, "fs");
        assert_eq!(
            hop[0].1.replacement,
            Some("flowcontrol.apiserver.k8s.io/v1")
        );
        // Already past 1.22: the Ingress could not exist any more; not this plan's concern.
        assert!(removed_between(&uses, Minor::new(1, 29), Minor::new(1, 31)).is_empty());
        assert!(objects_in_manifest("bad.yaml", "a: [").is_err());
    }
}
