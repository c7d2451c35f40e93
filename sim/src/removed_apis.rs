//! Kubernetes APIs removed in a release, from `../shared/reference/kubernetes/removed-apis.json`
//! (the official deprecation guide), plus each resource's plural as it appears in request
//! paths. The simulator keeps its own copy: it shares no tables with kup.

/// One removed group/version of a resource.
pub struct RemovedApi {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub resource: &'static str,
    /// Minor (1.x) the API stopped being served in.
    pub removed_in: u32,
    /// `group/version` to migrate to, if any.
    pub replacement: Option<&'static str>,
    /// Minor the replacement is served since, if the guide names one.
    pub replacement_since: Option<u32>,
}

impl RemovedApi {
    /// The request path of the collection, as EKS reports `usage`:
    /// `/apis/networking.k8s.io/v1beta1/ingresses`.
    pub fn path(&self) -> String {
        format!("/apis/{}/{}/{}", self.group, self.version, self.resource)
    }

    /// The replacement's collection path (same resource at the new group/version).
    pub fn replacement_path(&self) -> Option<String> {
        self.replacement
            .map(|gv| format!("/apis/{gv}/{}", self.resource))
    }

    /// `group.resource.version`, as AKS names APIs in its deprecation error.
    pub fn aks_name(&self) -> String {
        format!("{}.{}.{}", self.group, self.resource, self.version)
    }
}

macro_rules! api {
    ($g:literal, $v:literal, $k:literal, $r:literal, $rm:literal, $rep:expr, $since:expr) => {
        RemovedApi {
            group: $g,
            version: $v,
            kind: $k,
            resource: $r,
            removed_in: $rm,
            replacement: $rep,
            replacement_since: $since,
        }
    };
}

pub const REMOVED: &[RemovedApi] = &[
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "FlowSchema",
        "flowschemas",
        32,
        Some("flowcontrol.apiserver.k8s.io/v1"),
        Some(29)
    ),
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        32,
        Some("flowcontrol.apiserver.k8s.io/v1"),
        Some(29)
    ),
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "FlowSchema",
        "flowschemas",
        29,
        Some("flowcontrol.apiserver.k8s.io/v1"),
        Some(29)
    ),
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        29,
        Some("flowcontrol.apiserver.k8s.io/v1"),
        Some(29)
    ),
    api!(
        "storage.k8s.io",
        "v1beta1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        27,
        Some("storage.k8s.io/v1"),
        Some(24)
    ),
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "FlowSchema",
        "flowschemas",
        26,
        Some("flowcontrol.apiserver.k8s.io/v1beta2"),
        None
    ),
    api!(
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        26,
        Some("flowcontrol.apiserver.k8s.io/v1beta2"),
        None
    ),
    api!(
        "autoscaling",
        "v2beta2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        26,
        Some("autoscaling/v2"),
        Some(23)
    ),
    api!(
        "batch",
        "v1beta1",
        "CronJob",
        "cronjobs",
        25,
        Some("batch/v1"),
        Some(21)
    ),
    api!(
        "discovery.k8s.io",
        "v1beta1",
        "EndpointSlice",
        "endpointslices",
        25,
        Some("discovery.k8s.io/v1"),
        Some(21)
    ),
    api!(
        "events.k8s.io",
        "v1beta1",
        "Event",
        "events",
        25,
        Some("events.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "autoscaling",
        "v2beta1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        25,
        Some("autoscaling/v2"),
        Some(23)
    ),
    api!(
        "policy",
        "v1beta1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        25,
        Some("policy/v1"),
        Some(21)
    ),
    api!(
        "policy",
        "v1beta1",
        "PodSecurityPolicy",
        "podsecuritypolicies",
        25,
        None,
        None
    ),
    api!(
        "node.k8s.io",
        "v1beta1",
        "RuntimeClass",
        "runtimeclasses",
        25,
        Some("node.k8s.io/v1"),
        Some(20)
    ),
    api!(
        "admissionregistration.k8s.io",
        "v1beta1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        22,
        Some("admissionregistration.k8s.io/v1"),
        Some(16)
    ),
    api!(
        "admissionregistration.k8s.io",
        "v1beta1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        22,
        Some("admissionregistration.k8s.io/v1"),
        Some(16)
    ),
    api!(
        "apiextensions.k8s.io",
        "v1beta1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        22,
        Some("apiextensions.k8s.io/v1"),
        Some(16)
    ),
    api!(
        "apiregistration.k8s.io",
        "v1beta1",
        "APIService",
        "apiservices",
        22,
        Some("apiregistration.k8s.io/v1"),
        Some(10)
    ),
    api!(
        "authentication.k8s.io",
        "v1beta1",
        "TokenReview",
        "tokenreviews",
        22,
        Some("authentication.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "authorization.k8s.io",
        "v1beta1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        22,
        Some("authorization.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "authorization.k8s.io",
        "v1beta1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        22,
        Some("authorization.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "authorization.k8s.io",
        "v1beta1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        22,
        Some("authorization.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "authorization.k8s.io",
        "v1beta1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        22,
        Some("authorization.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "certificates.k8s.io",
        "v1beta1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        22,
        Some("certificates.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "coordination.k8s.io",
        "v1beta1",
        "Lease",
        "leases",
        22,
        Some("coordination.k8s.io/v1"),
        Some(14)
    ),
    api!(
        "extensions",
        "v1beta1",
        "Ingress",
        "ingresses",
        22,
        Some("networking.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "networking.k8s.io",
        "v1beta1",
        "Ingress",
        "ingresses",
        22,
        Some("networking.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "networking.k8s.io",
        "v1beta1",
        "IngressClass",
        "ingressclasses",
        22,
        Some("networking.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "ClusterRole",
        "clusterroles",
        22,
        Some("rbac.authorization.k8s.io/v1"),
        Some(8)
    ),
    api!(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        22,
        Some("rbac.authorization.k8s.io/v1"),
        Some(8)
    ),
    api!(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "Role",
        "roles",
        22,
        Some("rbac.authorization.k8s.io/v1"),
        Some(8)
    ),
    api!(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "RoleBinding",
        "rolebindings",
        22,
        Some("rbac.authorization.k8s.io/v1"),
        Some(8)
    ),
    api!(
        "scheduling.k8s.io",
        "v1beta1",
        "PriorityClass",
        "priorityclasses",
        22,
        Some("scheduling.k8s.io/v1"),
        Some(14)
    ),
    api!(
        "storage.k8s.io",
        "v1beta1",
        "CSIDriver",
        "csidrivers",
        22,
        Some("storage.k8s.io/v1"),
        Some(19)
    ),
    api!(
        "storage.k8s.io",
        "v1beta1",
        "CSINode",
        "csinodes",
        22,
        Some("storage.k8s.io/v1"),
        Some(17)
    ),
    api!(
        "storage.k8s.io",
        "v1beta1",
        "StorageClass",
        "storageclasses",
        22,
        Some("storage.k8s.io/v1"),
        Some(6)
    ),
    api!(
        "storage.k8s.io",
        "v1beta1",
        "VolumeAttachment",
        "volumeattachments",
        22,
        Some("storage.k8s.io/v1"),
        Some(13)
    ),
    api!(
        "extensions",
        "v1beta1",
        "NetworkPolicy",
        "networkpolicies",
        16,
        Some("networking.k8s.io/v1"),
        Some(8)
    ),
    api!(
        "extensions",
        "v1beta1",
        "DaemonSet",
        "daemonsets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta2",
        "DaemonSet",
        "daemonsets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "extensions",
        "v1beta1",
        "Deployment",
        "deployments",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta1",
        "Deployment",
        "deployments",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta2",
        "Deployment",
        "deployments",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta1",
        "StatefulSet",
        "statefulsets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta2",
        "StatefulSet",
        "statefulsets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "extensions",
        "v1beta1",
        "ReplicaSet",
        "replicasets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta1",
        "ReplicaSet",
        "replicasets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "apps",
        "v1beta2",
        "ReplicaSet",
        "replicasets",
        16,
        Some("apps/v1"),
        Some(9)
    ),
    api!(
        "extensions",
        "v1beta1",
        "PodSecurityPolicy",
        "podsecuritypolicies",
        16,
        Some("policy/v1beta1"),
        Some(10)
    ),
];

/// The removed API a request path names (`/apis/GROUP/VERSION/RESOURCE`, optionally with a
/// trailing `/`).
pub fn by_path(path: &str) -> Option<&'static RemovedApi> {
    let p = path.trim_end_matches('/');
    REMOVED.iter().find(|a| a.path() == p)
}

/// The APIs removed in minor `1.minor`.
pub fn removed_in(minor: u32) -> impl Iterator<Item = &'static RemovedApi> {
    REMOVED.iter().filter(move |a| a.removed_in == minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_reference_and_paths_resolve() {
        assert_eq!(REMOVED.len(), 50);
        let ing = by_path("/apis/networking.k8s.io/v1beta1/ingresses").unwrap();
        assert_eq!((ing.kind, ing.removed_in), ("Ingress", 22));
        assert_eq!(
            ing.replacement_path().as_deref(),
            Some("/apis/networking.k8s.io/v1/ingresses")
        );
        assert_eq!(
            by_path("/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas/")
                .unwrap()
                .aks_name(),
            "flowcontrol.apiserver.k8s.io.flowschemas.v1beta3"
        );
        assert!(by_path("/apis/apps/v1/deployments").is_none());
        assert_eq!(removed_in(32).count(), 2);
        assert_eq!(removed_in(30).count(), 0);
    }
}
