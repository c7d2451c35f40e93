//! EKS upgrade insights (ListInsights / DescribeInsight, shapes `Insight`, `InsightSummary`,
//! `InsightStatus`, `InsightCategorySpecificSummary`, `DeprecationDetail`, `ClientStat`,
//! `InsightResourceDetail` of `service-2.json`): the checks EKS runs on every cluster for its
//! next minor, computed from the world, plus insights staged in the world file.

use std::collections::BTreeMap;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

use crate::world::{fmt_time, parse_time, Cluster, OrderedMap, UpdateStatus, World};

pub const CATEGORIES: &[&str] = &[
    "UPGRADE_READINESS",
    "MISCONFIGURATION",
    "ROLLBACK_READINESS",
];
pub const STATUSES: &[&str] = &["PASSING", "WARNING", "ERROR", "UNKNOWN"];

/// A repeatable unlabelled block: HCL gives one block as an object and several as a list;
/// JSON world files may use either. Always written as a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocks<T>(pub Vec<T>);

impl<T> Default for Blocks<T> {
    fn default() -> Self {
        Blocks(Vec::new())
    }
}

impl<T> Blocks<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for Blocks<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Blocks<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Blocks<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a block or a list of blocks")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(|t| Blocks(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(a)).map(Blocks)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Model and world-file form
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub user_agent: String,
    pub requests_last_30_days: i64,
    pub last_request_time: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deprecation {
    pub usage: String,
    pub replaced_with: Option<String>,
    pub stop_serving_version: Option<String>,
    pub start_serving_replacement_version: Option<String>,
    pub clients: Vec<Client>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kubernetes_resource_uri: Option<String>,
    pub arn: Option<String>,
    pub status: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddonCompat {
    pub name: String,
    pub compatible_versions: Vec<String>,
}

/// A staged insight (world-file `insight "ID"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    pub id: String,
    pub name: String,
    pub category: String,
    /// None: the cluster's next minor (moves with the cluster).
    pub kubernetes_version: Option<String>,
    pub status: String,
    pub reason: String,
    pub description: String,
    pub recommendation: String,
    pub additional_info: BTreeMap<String, String>,
    pub last_refresh_time: Option<f64>,
    pub last_transition_time: f64,
    pub deprecations: Vec<Deprecation>,
    pub resources: Vec<Resource>,
    pub addon_compatibility: Vec<AddonCompat>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub user_agent: String,
    #[serde(default)]
    pub requests_last_30_days: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_time: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeprecationFile {
    pub usage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_serving_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_serving_replacement_version: Option<String>,
    #[serde(default, skip_serializing_if = "Blocks::is_empty")]
    pub client: Blocks<ClientFile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_resource_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonCompatFile {
    pub name: String,
    #[serde(default)]
    pub compatible_versions: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Blocks::is_empty")]
    pub deprecation: Blocks<DeprecationFile>,
    #[serde(default, skip_serializing_if = "Blocks::is_empty")]
    pub resource: Blocks<ResourceFile>,
    #[serde(default, skip_serializing_if = "Blocks::is_empty")]
    pub addon_compatibility: Blocks<AddonCompatFile>,
}

fn minor_of(v: &str) -> Option<u32> {
    crate::catalog::parse_minor(v)
}

fn default_reason(status: &str) -> &'static str {
    match status {
        "PASSING" => "No issues detected.",
        "WARNING" => "Issues detected that may impact the upgrade.",
        "ERROR" => "Issues detected that will impact the upgrade.",
        _ => "Amazon EKS could not determine the status of this check.",
    }
}

pub fn from_file(id: &str, f: InsightFile, now: f64) -> Result<Insight, String> {
    if id.is_empty() {
        return Err("the insight id (block label) must not be empty".into());
    }
    if f.name.is_empty() {
        return Err("name must not be empty".into());
    }
    let category = f.category.unwrap_or_else(|| "UPGRADE_READINESS".into());
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(format!(
            "category `{category}` must be one of {}",
            CATEGORIES.join(", ")
        ));
    }
    if !STATUSES.contains(&f.status.as_str()) {
        return Err(format!(
            "status `{}` must be one of {}",
            f.status,
            STATUSES.join(", ")
        ));
    }
    if let Some(v) = &f.kubernetes_version {
        if minor_of(v).is_none() {
            return Err(format!(
                "kubernetes_version `{v}` must be a minor like \"1.30\""
            ));
        }
    }
    let mut deprecations = Vec::new();
    for d in f.deprecation.0 {
        let known = crate::removed_apis::by_path(&d.usage);
        let mut clients = Vec::new();
        for c in d.client.0 {
            if c.user_agent.is_empty() {
                return Err(format!(
                    "deprecation `{}`: client user_agent must not be empty",
                    d.usage
                ));
            }
            clients.push(Client {
                user_agent: c.user_agent,
                requests_last_30_days: c.requests_last_30_days.max(0),
                last_request_time: match &c.last_request_time {
                    Some(t) => parse_time("last_request_time", t)?,
                    None => now,
                },
            });
        }
        deprecations.push(Deprecation {
            replaced_with: d
                .replaced_with
                .or_else(|| known.and_then(|k| k.replacement_path())),
            stop_serving_version: d
                .stop_serving_version
                .or_else(|| known.map(|k| format!("1.{}", k.removed_in))),
            start_serving_replacement_version: d.start_serving_replacement_version.or_else(|| {
                known
                    .and_then(|k| k.replacement_since)
                    .map(|m| format!("1.{m}"))
            }),
            usage: d.usage,
            clients,
        });
    }
    let mut resources = Vec::new();
    for r in f.resource.0 {
        let status = r.status.unwrap_or_else(|| f.status.clone());
        if !STATUSES.contains(&status.as_str()) {
            return Err(format!(
                "resource status `{status}` must be one of {}",
                STATUSES.join(", ")
            ));
        }
        resources.push(Resource {
            kubernetes_resource_uri: r.kubernetes_resource_uri,
            arn: r.arn,
            reason: r.reason.unwrap_or_else(|| default_reason(&status).into()),
            status,
        });
    }
    Ok(Insight {
        id: id.to_string(),
        name: f.name,
        category,
        kubernetes_version: f.kubernetes_version,
        reason: f.reason.unwrap_or_else(|| default_reason(&f.status).into()),
        status: f.status,
        description: f.description.unwrap_or_default(),
        recommendation: f.recommendation.unwrap_or_default(),
        additional_info: f.additional_info.unwrap_or_default(),
        last_refresh_time: f
            .last_refresh_time
            .map(|t| parse_time("last_refresh_time", &t))
            .transpose()?,
        last_transition_time: match &f.last_transition_time {
            Some(t) => parse_time("last_transition_time", t)?,
            None => now,
        },
        deprecations,
        resources,
        addon_compatibility: f
            .addon_compatibility
            .0
            .into_iter()
            .map(|a| AddonCompat {
                name: a.name,
                compatible_versions: a.compatible_versions,
            })
            .collect(),
    })
}

pub fn to_file(insights: &[Insight]) -> OrderedMap<InsightFile> {
    OrderedMap(
        insights
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    InsightFile {
                        name: i.name.clone(),
                        category: Some(i.category.clone()),
                        kubernetes_version: i.kubernetes_version.clone(),
                        status: i.status.clone(),
                        reason: Some(i.reason.clone()),
                        description: (!i.description.is_empty()).then(|| i.description.clone()),
                        recommendation: (!i.recommendation.is_empty())
                            .then(|| i.recommendation.clone()),
                        additional_info: (!i.additional_info.is_empty())
                            .then(|| i.additional_info.clone()),
                        last_refresh_time: i.last_refresh_time.map(fmt_time),
                        last_transition_time: Some(fmt_time(i.last_transition_time)),
                        deprecation: Blocks(
                            i.deprecations
                                .iter()
                                .map(|d| DeprecationFile {
                                    usage: d.usage.clone(),
                                    replaced_with: d.replaced_with.clone(),
                                    stop_serving_version: d.stop_serving_version.clone(),
                                    start_serving_replacement_version: d
                                        .start_serving_replacement_version
                                        .clone(),
                                    client: Blocks(
                                        d.clients
                                            .iter()
                                            .map(|c| ClientFile {
                                                user_agent: c.user_agent.clone(),
                                                requests_last_30_days: c.requests_last_30_days,
                                                last_request_time: Some(fmt_time(
                                                    c.last_request_time,
                                                )),
                                            })
                                            .collect(),
                                    ),
                                })
                                .collect(),
                        ),
                        resource: Blocks(
                            i.resources
                                .iter()
                                .map(|r| ResourceFile {
                                    kubernetes_resource_uri: r.kubernetes_resource_uri.clone(),
                                    arn: r.arn.clone(),
                                    status: Some(r.status.clone()),
                                    reason: Some(r.reason.clone()),
                                })
                                .collect(),
                        ),
                        addon_compatibility: Blocks(
                            i.addon_compatibility
                                .iter()
                                .map(|a| AddonCompatFile {
                                    name: a.name.clone(),
                                    compatible_versions: a.compatible_versions.clone(),
                                })
                                .collect(),
                        ),
                    },
                )
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// The insights EKS reports for a cluster
// ---------------------------------------------------------------------------------------------

/// Epoch seconds with millisecond precision (rest-json timestamps).
fn ts(t: f64) -> Value {
    json!((t * 1000.0).round() / 1000.0)
}

fn fake_uuid(s: &str) -> String {
    let a = crate::kube::fnv(s);
    let b = crate::kube::fnv(&format!("{s}#2"));
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

const UPGRADE_DOCS: (&str, &str) = (
    "EKS update cluster documentation",
    "https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html",
);

/// When the control plane last changed version (or was created): the transition time of the
/// computed checks, which are re-evaluated for a new next minor after every upgrade.
fn last_version_change(c: &Cluster) -> f64 {
    c.updates
        .iter()
        .filter(|u| {
            u.kind == "VersionUpdate"
                && u.nodegroup.is_none()
                && u.addon.is_none()
                && u.status == UpdateStatus::Successful
        })
        .map(|u| u.created_at)
        .fold(c.created_at, f64::max)
}

/// The insights of cluster `c` as full `Insight` objects: EKS's standard UPGRADE_READINESS
/// checks for the next minor (PASSING, except a computed kubelet version skew), with staged
/// insights of the same name replacing them and other staged ones added. Staged insights for
/// a version the cluster has reached are no longer reported. Sorted by name.
pub fn all(w: &World, c: &Cluster, now: f64) -> Vec<Value> {
    let next = c.version + 1;
    let next_v = format!("1.{next}");
    let since = last_version_change(c);
    let arn = |kind: &str, name: &str| {
        format!(
            "arn:aws:eks:{}:{}:{kind}/{}/{name}",
            c.region, w.settings.account_id, c.name
        )
    };
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let standard = |name: String,
                    status: &str,
                    reason: String,
                    description: String,
                    recommendation: &str,
                    transition: f64,
                    resources: Vec<Value>,
                    summary: Value| {
        json!({
            "id": fake_uuid(&format!("{}/{name}/{next_v}", c.name)),
            "name": name,
            "category": "UPGRADE_READINESS",
            "kubernetesVersion": next_v,
            "lastRefreshTime": ts(now),
            "lastTransitionTime": ts(transition),
            "description": description,
            "insightStatus": { "status": status, "reason": reason },
            "recommendation": recommendation,
            "additionalInfo": { UPGRADE_DOCS.0: UPGRADE_DOCS.1 },
            "resources": resources,
            "categorySpecificSummary": summary,
        })
    };
    // Kubelet version skew: node groups behind the control plane would fall further behind.
    let behind: Vec<_> = c
        .node_groups
        .values()
        .filter(|ng| ng.version < c.version)
        .collect();
    let (status, reason) = if behind.is_empty() {
        (
            "PASSING",
            "Node kubelet versions match the cluster control plane version.".to_string(),
        )
    } else {
        (
            "WARNING",
            format!(
                "Node kubelet versions are behind the cluster control plane version 1.{}: upgrading the control plane to {next_v} would widen the version skew of node group(s) {}.",
                c.version,
                behind.iter().map(|ng| format!("{} (1.{})", ng.name, ng.version)).collect::<Vec<_>>().join(", ")
            ),
        )
    };
    let resources: Vec<Value> = behind
        .iter()
        .map(|ng| {
            json!({
                "insightStatus": { "status": "WARNING", "reason": format!(
                    "Node group {} runs kubelet 1.{}, the control plane 1.{}.", ng.name, ng.version, c.version) },
                "arn": arn("nodegroup", &ng.name),
            })
        })
        .collect();
    let transition = c
        .node_groups
        .values()
        .map(|ng| ng.modified_at)
        .fold(since, f64::max);
    out.insert(
        "Kubelet version skew".into(),
        standard(
            "Kubelet version skew".into(),
            status,
            reason,
            format!("Checks for kubelet versions of worker nodes in the cluster to see if upgrade to {next_v} would cause non compliance with supported Kubernetes kubelet version skew policy."),
            "Upgrade your worker nodes to match the Kubernetes version of your cluster control plane.",
            transition,
            resources,
            json!({}),
        ),
    );
    out.insert(
        "Kube-proxy version skew".into(),
        standard(
            "Kube-proxy version skew".into(),
            "PASSING",
            "kube-proxy versions match the cluster control plane version.".into(),
            format!("Checks version of kube-proxy in cluster to see if upgrade to {next_v} would cause non compliance with supported Kubernetes kube-proxy version skew policy."),
            "Upgrade your kube-proxy to be the same version as your cluster control plane.",
            since,
            vec![],
            json!({}),
        ),
    );
    let deprecations: Vec<Value> = crate::removed_apis::removed_in(next)
        .map(|a| {
            json!({
                "usage": a.path(),
                "replacedWith": a.replacement_path(),
                "stopServingVersion": next_v,
                "startServingReplacementVersion": a.replacement_since.map(|m| format!("1.{m}")),
                "clientStats": [],
            })
        })
        .collect();
    let dep_name = format!("Deprecated APIs removed in Kubernetes v{next_v}");
    out.insert(
        dep_name.clone(),
        standard(
            dep_name,
            "PASSING",
            "No deprecated API usage detected within the last 30 days.".into(),
            format!("Checks for usage of deprecated APIs that are scheduled for removal in Kubernetes v{next_v}. Upgrading your cluster before migrating to the updated APIs supported by v{next_v} could cause application impact."),
            &format!("Update manifests and API clients to use newer Kubernetes APIs if applicable before upgrading to Kubernetes v{next_v}."),
            since,
            vec![],
            json!({ "deprecationDetails": deprecations }),
        ),
    );
    let compat: Vec<Value> = c
        .addons
        .keys()
        .filter_map(|name| {
            crate::catalog::addon(name).map(|cat| {
                json!({ "name": name, "compatibleVersions":
                    cat.compatible(next).iter().map(|v| v.version).collect::<Vec<_>>() })
            })
        })
        .collect();
    out.insert(
        "Amazon EKS add-on version compatibility".into(),
        standard(
            "Amazon EKS add-on version compatibility".into(),
            "PASSING",
            "All installed Amazon EKS add-on versions are compatible with the next Kubernetes version.".into(),
            format!("Checks version of installed EKS add-ons to ensure they are compatible with the next version of Kubernetes ({next_v})."),
            "Upgrade your EKS add-ons to a version compatible with the next Kubernetes version before upgrading the cluster.",
            since,
            vec![],
            json!({ "addonCompatibilityDetails": compat }),
        ),
    );
    out.insert(
        "Cluster health issues".into(),
        standard(
            "Cluster health issues".into(),
            "PASSING",
            "No cluster health issues detected.".into(),
            format!("Checks for any cluster health issues that prevent successful upgrade to the next Kubernetes version ({next_v}) on EKS."),
            "Resolve the cluster health issues before upgrading.",
            since,
            vec![],
            json!({}),
        ),
    );
    for i in &c.insights {
        let version = match &i.kubernetes_version {
            None => next_v.clone(),
            Some(v) if minor_of(v).is_some_and(|m| m > c.version) => v.clone(),
            Some(_) => continue,
        };
        let deprecations: Vec<Value> = i
            .deprecations
            .iter()
            .map(|d| {
                json!({
                    "usage": d.usage,
                    "replacedWith": d.replaced_with,
                    "stopServingVersion": d.stop_serving_version,
                    "startServingReplacementVersion": d.start_serving_replacement_version,
                    "clientStats": d.clients.iter().map(|cl| json!({
                        "userAgent": cl.user_agent,
                        "numberOfRequestsLast30Days": cl.requests_last_30_days,
                        "lastRequestTime": ts(cl.last_request_time),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut summary = json!({});
        if !deprecations.is_empty() {
            summary["deprecationDetails"] = json!(deprecations);
        }
        if !i.addon_compatibility.is_empty() {
            summary["addonCompatibilityDetails"] = json!(i
                .addon_compatibility
                .iter()
                .map(|a| json!({ "name": a.name, "compatibleVersions": a.compatible_versions }))
                .collect::<Vec<_>>());
        }
        let resources: Vec<Value> = i
            .resources
            .iter()
            .map(|r| {
                let mut v = json!({ "insightStatus": { "status": r.status, "reason": r.reason } });
                if let Some(u) = &r.kubernetes_resource_uri {
                    v["kubernetesResourceUri"] = json!(u);
                }
                if let Some(a) = &r.arn {
                    v["arn"] = json!(a);
                }
                v
            })
            .collect();
        out.insert(
            i.name.clone(),
            json!({
                "id": i.id,
                "name": i.name,
                "category": i.category,
                "kubernetesVersion": version,
                "lastRefreshTime": ts(i.last_refresh_time.unwrap_or(now)),
                "lastTransitionTime": ts(i.last_transition_time),
                "description": i.description,
                "insightStatus": { "status": i.status, "reason": i.reason },
                "recommendation": i.recommendation,
                "additionalInfo": i.additional_info,
                "resources": resources,
                "categorySpecificSummary": summary,
            }),
        );
    }
    out.into_values().collect()
}

/// The `InsightSummary` of a full insight.
pub fn summary(i: &Value) -> Value {
    let mut s = json!({});
    for k in [
        "id",
        "name",
        "category",
        "kubernetesVersion",
        "lastRefreshTime",
        "lastTransitionTime",
        "description",
        "insightStatus",
    ] {
        s[k] = i[k].clone();
    }
    s
}

/// Does insight `i` pass `filter` (`InsightsFilter`: categories, kubernetesVersions, statuses;
/// an empty or missing list matches everything)?
pub fn matches(i: &Value, filter: &Value) -> bool {
    let ok = |key: &str, v: &Value| {
        filter[key]
            .as_array()
            .is_none_or(|a| a.is_empty() || a.contains(v))
    };
    ok("categories", &i["category"])
        && ok("kubernetesVersions", &i["kubernetesVersion"])
        && ok("statuses", &i["insightStatus"]["status"])
}

/// Check an `InsightsFilter` against the model's enums; the message names the bad value.
pub fn check_filter(filter: &Value) -> Result<(), String> {
    if filter.is_null() {
        return Ok(());
    }
    if !filter.is_object() {
        return Err("filter must be an object".into());
    }
    for (key, allowed) in [
        ("categories", Some(CATEGORIES)),
        ("statuses", Some(STATUSES)),
        ("kubernetesVersions", None),
    ] {
        match &filter[key] {
            Value::Null => {}
            Value::Array(a) => {
                for v in a {
                    let Some(s) = v.as_str() else {
                        return Err(format!("filter.{key} must be a list of strings"));
                    };
                    let ok = match allowed {
                        Some(list) => list.contains(&s),
                        None => minor_of(s).is_some() && s.matches('.').count() == 1,
                    };
                    if !ok {
                        return Err(match allowed {
                            Some(list) => format!(
                                "Invalid value '{s}' in filter.{key}; valid values: {}",
                                list.join(", ")
                            ),
                            None => format!(
                                "Invalid Kubernetes version '{s}' in filter.kubernetesVersions; use a minor version like 1.30"
                            ),
                        });
                    }
                }
            }
            _ => return Err(format!("filter.{key} must be a list of strings")),
        }
    }
    Ok(())
}
