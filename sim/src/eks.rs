//! The EKS REST-JSON API (model `eks-2017-11-01`): routing, request parsing, the operations'
//! semantics and their JSON responses.

use crate::kube::fnv;
use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::catalog::{self, parse_minor, SupportStatus};
use crate::error::EksError;
use crate::faults::default_message;
use crate::state::Inner;
use crate::world::{
    self, check_scaling, check_update_config, fmt_time, Addon, Cluster, Lifecycle, NodeGroup,
    Taint, Update, UpdateStatus, World,
};

/// Simulated durations, in seconds of simulated time.
pub mod durations {
    pub const CLUSTER_VERSION: f64 = 8.0 * 60.0;
    pub const NODEGROUP_VERSION_PER_BATCH: f64 = 3.0 * 60.0;
    pub const NODEGROUP_CONFIG: f64 = 30.0;
    pub const ADDON: f64 = 60.0;
    pub const NODEGROUP_CREATE: f64 = 4.0 * 60.0;
    pub const NODEGROUP_DELETE: f64 = 3.0 * 60.0;
}

/// A recognised EKS operation with its path labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    ListClusters,
    DescribeCluster(String),
    DescribeClusterVersions,
    ListNodegroups(String),
    CreateNodegroup(String),
    DescribeNodegroup(String, String),
    DeleteNodegroup(String, String),
    UpdateNodegroupVersion(String, String),
    UpdateNodegroupConfig(String, String),
    UpdateClusterVersion(String),
    ListUpdates(String),
    DescribeUpdate(String, String),
    ListAddons(String),
    DescribeAddon(String, String),
    UpdateAddon(String, String),
    DescribeAddonVersions,
    ListInsights(String),
    DescribeInsight(String, String),
}

impl Route {
    pub fn parse(method: &Method, path: &str) -> Option<Route> {
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segs.iter().map(|x| x.as_str()).collect();
        let m = method.clone();
        let o = |x: &str| x.to_string();
        Some(match (m, s.as_slice()) {
            (Method::GET, ["clusters"]) => Route::ListClusters,
            (Method::GET, ["clusters", c]) => Route::DescribeCluster(o(c)),
            (Method::GET, ["cluster-versions"]) => Route::DescribeClusterVersions,
            (Method::GET, ["clusters", c, "node-groups"]) => Route::ListNodegroups(o(c)),
            (Method::POST, ["clusters", c, "node-groups"]) => Route::CreateNodegroup(o(c)),
            (Method::GET, ["clusters", c, "node-groups", n]) => {
                Route::DescribeNodegroup(o(c), o(n))
            }
            (Method::DELETE, ["clusters", c, "node-groups", n]) => {
                Route::DeleteNodegroup(o(c), o(n))
            }
            (Method::POST, ["clusters", c, "node-groups", n, "update-version"]) => {
                Route::UpdateNodegroupVersion(o(c), o(n))
            }
            (Method::POST, ["clusters", c, "node-groups", n, "update-config"]) => {
                Route::UpdateNodegroupConfig(o(c), o(n))
            }
            (Method::POST, ["clusters", c, "updates"]) => Route::UpdateClusterVersion(o(c)),
            (Method::GET, ["clusters", c, "updates"]) => Route::ListUpdates(o(c)),
            (Method::GET, ["clusters", c, "updates", id]) => Route::DescribeUpdate(o(c), o(id)),
            (Method::GET, ["clusters", c, "addons"]) => Route::ListAddons(o(c)),
            (Method::GET, ["clusters", c, "addons", a]) => Route::DescribeAddon(o(c), o(a)),
            (Method::POST, ["clusters", c, "addons", a, "update"]) => {
                Route::UpdateAddon(o(c), o(a))
            }
            (Method::GET, ["addons", "supported-versions"]) => Route::DescribeAddonVersions,
            (Method::POST, ["clusters", c, "insights"]) => Route::ListInsights(o(c)),
            (Method::GET, ["clusters", c, "insights", id]) => Route::DescribeInsight(o(c), o(id)),
            _ => return None,
        })
    }

    pub fn op(&self) -> &'static str {
        match self {
            Route::ListClusters => "ListClusters",
            Route::DescribeCluster(_) => "DescribeCluster",
            Route::DescribeClusterVersions => "DescribeClusterVersions",
            Route::ListNodegroups(_) => "ListNodegroups",
            Route::CreateNodegroup(_) => "CreateNodegroup",
            Route::DescribeNodegroup(..) => "DescribeNodegroup",
            Route::DeleteNodegroup(..) => "DeleteNodegroup",
            Route::UpdateNodegroupVersion(..) => "UpdateNodegroupVersion",
            Route::UpdateNodegroupConfig(..) => "UpdateNodegroupConfig",
            Route::UpdateClusterVersion(_) => "UpdateClusterVersion",
            Route::ListUpdates(_) => "ListUpdates",
            Route::DescribeUpdate(..) => "DescribeUpdate",
            Route::ListAddons(_) => "ListAddons",
            Route::DescribeAddon(..) => "DescribeAddon",
            Route::UpdateAddon(..) => "UpdateAddon",
            Route::DescribeAddonVersions => "DescribeAddonVersions",
            Route::ListInsights(_) => "ListInsights",
            Route::DescribeInsight(..) => "DescribeInsight",
        }
    }

    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Route::CreateNodegroup(_)
                | Route::DeleteNodegroup(..)
                | Route::UpdateNodegroupVersion(..)
                | Route::UpdateNodegroupConfig(..)
                | Route::UpdateClusterVersion(_)
                | Route::UpdateAddon(..)
        )
    }

    /// (cluster, nodegroup, addon) the call addresses; `body` supplies CreateNodegroup's name.
    pub fn resource(&self, body: &Value) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Route::ListClusters | Route::DescribeClusterVersions | Route::DescribeAddonVersions => {
                (None, None, None)
            }
            Route::DescribeCluster(c)
            | Route::ListNodegroups(c)
            | Route::UpdateClusterVersion(c)
            | Route::ListUpdates(c)
            | Route::DescribeUpdate(c, _)
            | Route::ListInsights(c)
            | Route::DescribeInsight(c, _)
            | Route::ListAddons(c) => (Some(c.clone()), None, None),
            Route::CreateNodegroup(c) => (
                Some(c.clone()),
                body.get("nodegroupName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                None,
            ),
            Route::DescribeNodegroup(c, n)
            | Route::DeleteNodegroup(c, n)
            | Route::UpdateNodegroupVersion(c, n)
            | Route::UpdateNodegroupConfig(c, n) => (Some(c.clone()), Some(n.clone()), None),
            Route::DescribeAddon(c, a) | Route::UpdateAddon(c, a) => {
                (Some(c.clone()), None, Some(a.clone()))
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query string as (key, value) pairs in order; repeated keys are kept.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k, true), decode(v, true)),
            None => (decode(p, true), String::new()),
        })
        .collect()
}

/// The outcome of a successful operation.
pub struct Done {
    pub body: Value,
    pub update_id: Option<String>,
    pub replay: bool,
    pub mutated: bool,
}

impl Done {
    fn read(body: Value) -> Self {
        Done {
            body,
            update_id: None,
            replay: false,
            mutated: false,
        }
    }
}

pub struct Ctx<'a> {
    pub inner: &'a mut Inner,
    pub now: f64,
    pub speed: f64,
}

type R = Result<Done, EksError>;

pub fn execute(route: &Route, query: &[(String, String)], body: &Value, cx: Ctx<'_>) -> R {
    let q = Query(query);
    match route {
        Route::ListClusters => list_clusters(&cx.inner.world, &q),
        Route::DescribeCluster(c) => {
            let w = &cx.inner.world;
            let cl = cluster(w, c)?;
            Ok(Done::read(json!({ "cluster": cluster_json(w, cl) })))
        }
        Route::DescribeClusterVersions => describe_cluster_versions(&cx.inner.world, &q),
        Route::ListNodegroups(c) => {
            let cl = cluster(&cx.inner.world, c)?;
            let names: Vec<String> = cl.node_groups.keys().cloned().collect();
            paginate(&q, names, "nodegroups")
        }
        Route::DescribeNodegroup(c, n) => {
            let w = &cx.inner.world;
            let cl = cluster(w, c)?;
            let ng = nodegroup(cl, n)?;
            Ok(Done::read(
                json!({ "nodegroup": nodegroup_json(w, cl, ng) }),
            ))
        }
        Route::ListAddons(c) => {
            let cl = cluster(&cx.inner.world, c)?;
            let names: Vec<String> = cl.addons.keys().cloned().collect();
            paginate(&q, names, "addons")
        }
        Route::DescribeAddon(c, a) => {
            let w = &cx.inner.world;
            let cl = cluster(w, c)?;
            let ad = addon(cl, a)?;
            Ok(Done::read(json!({ "addon": addon_json(w, cl, ad) })))
        }
        Route::DescribeAddonVersions => describe_addon_versions(&cx.inner.world, &q),
        Route::ListUpdates(c) => list_updates(&cx.inner.world, c, &q),
        Route::DescribeUpdate(c, id) => describe_update(&cx.inner.world, c, id, &q),
        Route::UpdateClusterVersion(c) => update_cluster_version(cx, c, obj(body)?),
        Route::UpdateNodegroupVersion(c, n) => update_nodegroup_version(cx, c, n, obj(body)?),
        Route::UpdateNodegroupConfig(c, n) => update_nodegroup_config(cx, c, n, obj(body)?),
        Route::UpdateAddon(c, a) => update_addon(cx, c, a, obj(body)?),
        Route::CreateNodegroup(c) => create_nodegroup(cx, c, obj(body)?),
        Route::DeleteNodegroup(c, n) => delete_nodegroup(cx, c, n),
        Route::ListInsights(c) => list_insights(&cx.inner.world, c, body, cx.now),
        Route::DescribeInsight(c, id) => {
            let w = &cx.inner.world;
            let cl = cluster(w, c)?;
            let i = crate::insights::all(w, cl, cx.now)
                .into_iter()
                .find(|i| i["id"] == id.as_str())
                .ok_or_else(|| {
                    EksError::not_found(format!("No insight found for id: {id}.")).cluster(c)
                })?;
            Ok(Done::read(json!({ "insight": i })))
        }
    }
}

/// ListInsights: the body's `filter`, `maxResults` (1–100) and `nextToken`, paginated on
/// `insights` (paginators-1.json).
fn list_insights(w: &World, name: &str, body: &Value, now: f64) -> R {
    let cl = cluster(w, name)?;
    let b = obj(body)?;
    let filter = b.get("filter").cloned().unwrap_or(Value::Null);
    crate::insights::check_filter(&filter).map_err(|m| EksError::invalid_param(m).cluster(name))?;
    let mut q: Vec<(String, String)> = Vec::new();
    match b.get("maxResults") {
        None | Some(Value::Null) => {}
        Some(v) => q.push(("maxResults".into(), v.to_string())),
    }
    if let Some(t) = opt_str(b, "nextToken")? {
        q.push(("nextToken".into(), t.to_string()));
    }
    let items: Vec<Value> = crate::insights::all(w, cl, now)
        .iter()
        .filter(|i| crate::insights::matches(i, &filter))
        .map(crate::insights::summary)
        .collect();
    let (items, next) = page(&Query(&q), items)?;
    let mut out = json!({ "insights": items });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(Done::read(out))
}

// ---------------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------------

struct Query<'a>(&'a [(String, String)]);

impl Query<'_> {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .collect()
    }
    fn bool(&self, k: &str) -> Result<Option<bool>, EksError> {
        match self.get(k) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(EksError::invalid_param(format!(
                "{k} must be true or false, got {v}"
            ))),
        }
    }
    fn max_results(&self) -> Result<usize, EksError> {
        match self.get("maxResults") {
            None => Ok(100),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(EksError::invalid_param(format!(
                    "maxResults must be an integer between 1 and 100, got {v}"
                ))),
            },
        }
    }
    fn offset(&self) -> Result<usize, EksError> {
        match self.get("nextToken") {
            None => Ok(0),
            Some(t) => decode_token(t)
                .ok_or_else(|| EksError::invalid_param("The nextToken provided is invalid")),
        }
    }
}

fn encode_token(offset: usize) -> String {
    format!("sim-{offset:08x}")
}

fn decode_token(t: &str) -> Option<usize> {
    usize::from_str_radix(t.strip_prefix("sim-")?, 16).ok()
}

fn paginate(q: &Query, items: Vec<String>, key: &str) -> R {
    let (page, next) = page(q, items)?;
    let mut m = Map::new();
    m.insert(key.into(), json!(page));
    if let Some(n) = next {
        m.insert("nextToken".into(), json!(n));
    }
    Ok(Done::read(Value::Object(m)))
}

fn page<T>(q: &Query, items: Vec<T>) -> Result<(Vec<T>, Option<String>), EksError> {
    let max = q.max_results()?;
    let off = q.offset()?;
    if off > items.len() {
        return Err(EksError::invalid_param("The nextToken provided is invalid"));
    }
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(off).take(max).collect();
    let next = (off + page.len() < total).then(|| encode_token(off + page.len()));
    Ok((page, next))
}

fn obj(body: &Value) -> Result<&Map<String, Value>, EksError> {
    body.as_object().ok_or_else(|| {
        EksError::new(
            "BadRequestException",
            "The request body must be a JSON object",
        )
    })
}

fn opt_str<'a>(b: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EksError::invalid_param(format!("{k} must be a string"))),
    }
}

fn opt_bool(b: &Map<String, Value>, k: &str) -> Result<Option<bool>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(x)) => Ok(Some(*x)),
        Some(_) => Err(EksError::invalid_param(format!("{k} must be a boolean"))),
    }
}

fn opt_u32(b: &Map<String, Value>, k: &str) -> Result<Option<u32>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| EksError::invalid_param(format!("{k} must be a non-negative integer"))),
    }
}

fn opt_obj<'a>(
    b: &'a Map<String, Value>,
    k: &str,
) -> Result<Option<&'a Map<String, Value>>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(EksError::invalid_param(format!("{k} must be an object"))),
    }
}

fn str_map(b: &Map<String, Value>, k: &str) -> Result<Option<BTreeMap<String, String>>, EksError> {
    match opt_obj(b, k)? {
        None => Ok(None),
        Some(m) => m
            .iter()
            .map(|(k2, v)| match v {
                Value::String(s) => Ok((k2.clone(), s.clone())),
                _ => Err(EksError::invalid_param(format!(
                    "{k}.{k2} must be a string"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
    }
}

fn str_list(b: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    EksError::invalid_param(format!("{k} must be a list of strings"))
                })
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(EksError::invalid_param(format!(
            "{k} must be a list of strings"
        ))),
    }
}

fn taints(b: &Map<String, Value>, k: &str) -> Result<Option<Vec<Taint>>, EksError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let ts: Vec<Taint> = serde_json::from_value(v.clone())
                .map_err(|e| EksError::invalid_param(format!("{k}: {e}")))?;
            for t in &ts {
                if !world::TAINT_EFFECTS.contains(&t.effect.as_str()) {
                    return Err(EksError::invalid_param(format!(
                        "Taint effect {} is invalid; valid values: {}",
                        t.effect,
                        world::TAINT_EFFECTS.join(", ")
                    )));
                }
            }
            Ok(Some(ts))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

fn cluster<'a>(w: &'a World, name: &str) -> Result<&'a Cluster, EksError> {
    w.clusters.get(name).ok_or_else(|| {
        EksError::not_found(format!("No cluster found for name: {name}.")).cluster(name)
    })
}

fn nodegroup<'a>(c: &'a Cluster, name: &str) -> Result<&'a NodeGroup, EksError> {
    c.node_groups.get(name).ok_or_else(|| {
        EksError::not_found(format!("No node group found for name: {name}."))
            .cluster(&c.name)
            .nodegroup(name)
    })
}

fn addon<'a>(c: &'a Cluster, name: &str) -> Result<&'a Addon, EksError> {
    c.addons.get(name).ok_or_else(|| {
        EksError::not_found(format!("No addon: {name} found in cluster: {}", c.name))
            .cluster(&c.name)
            .addon(name)
    })
}

// ---------------------------------------------------------------------------------------------
// JSON rendering
// ---------------------------------------------------------------------------------------------

fn hex32(s: &str) -> String {
    format!("{:016X}{:016X}", fnv(s), fnv(&format!("{s}#2")))
}

fn fake_uuid(s: &str) -> String {
    let h = hex32(s).to_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Epoch seconds with millisecond precision (rest-json default timestamp format).
fn ts(t: f64) -> Value {
    json!((t * 1000.0).round() / 1000.0)
}

fn cluster_arn(w: &World, c: &Cluster) -> String {
    format!(
        "arn:aws:eks:{}:{}:cluster/{}",
        c.region, w.settings.account_id, c.name
    )
}

/// A real (self-signed, EC P-256) CA certificate, so clients that parse
/// `certificateAuthority.data` accept it; the simulated API servers are plain http.
pub const SIM_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUbBIe/wlEDLR4gZl5yyOjlMoCrzgwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjExMjIyMjQyMjlaGA8yMTI2MTAy
OTIyNDIyOVowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABOQZ17Lj+GxoDYY97u9d5px1AszGC8S9R4+bTS+90GYHXuK8n+P8
uscRTv0/+ZbTdazgSynYdovv9gsCNUx9eJSjYzBhMB0GA1UdDgQWBBS3P4BGYb1f
5D6MehtuUCQqhAYnVjAfBgNVHSMEGDAWgBS3P4BGYb1f5D6MehtuUCQqhAYnVjAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDAKBggqhkjOPQQDAgNIADBF
AiBy/I8w5D5c9kAoNAT7Oo6FxHzH4VLkHa4eOrVBw5sbNwIhAMUP4RTAZYQ+r2Ob
dAhdBJ06+44J8FTc5yMi8VBZOve1
-----END CERTIFICATE-----
";

pub fn cluster_json(w: &World, c: &Cluster) -> Value {
    let acct = &w.settings.account_id;
    let h = hex32(&format!("{}/{}", c.region, c.name));
    let short = |x: &str| format!("{:017x}", fnv(&format!("{}{x}", c.name)))[..17].to_string();
    let pem = SIM_CA_PEM;
    let endpoint = c
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://{h}.gr7.{}.eks.amazonaws.com", c.region));
    json!({
        "name": c.name,
        "arn": cluster_arn(w, c),
        "createdAt": ts(c.created_at),
        "version": format!("1.{}", c.version),
        "endpoint": endpoint,
        "roleArn": format!("arn:aws:iam::{acct}:role/{}-eks-cluster-role", c.name),
        "resourcesVpcConfig": {
            "subnetIds": [format!("subnet-{}", short("a")), format!("subnet-{}", short("b"))],
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{}", short("csg")),
            "vpcId": format!("vpc-{}", short("vpc")),
            "endpointPublicAccess": true,
            "endpointPrivateAccess": false,
            "publicAccessCidrs": ["0.0.0.0/0"]
        },
        "kubernetesNetworkConfig": { "serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4" },
        "logging": { "clusterLogging": [ {
            "types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
            "enabled": false
        } ] },
        "identity": { "oidc": { "issuer": format!("https://oidc.eks.{}.amazonaws.com/id/{h}", c.region) } },
        "status": c.status(),
        "certificateAuthority": { "data": base64(pem.as_bytes()) },
        "platformVersion": c.platform_version,
        "tags": c.tags,
        "health": { "issues": [] },
        "accessConfig": { "authenticationMode": "API_AND_CONFIG_MAP" },
        "upgradePolicy": { "supportType": "EXTENDED" }
    })
}

pub fn nodegroup_json(w: &World, c: &Cluster, ng: &NodeGroup) -> Value {
    let id = fake_uuid(&format!("{}/{}/{}", c.name, ng.name, ng.created_at));
    let acct = &w.settings.account_id;
    let mut update_config = Map::new();
    if let Some(n) = ng.max_unavailable {
        update_config.insert("maxUnavailable".into(), json!(n));
    }
    if let Some(n) = ng.max_unavailable_percentage {
        update_config.insert("maxUnavailablePercentage".into(), json!(n));
    }
    if let Some(s) = &ng.update_strategy {
        update_config.insert("updateStrategy".into(), json!(s));
    }
    let issues = match (&ng.lifecycle, &ng.failure) {
        (Lifecycle::CreateFailed | Lifecycle::DeleteFailed, Some((code, msg))) => {
            let issue_code = match code.as_str() {
                "NodeCreationFailure"
                | "PodEvictionFailure"
                | "AccessDenied"
                | "InsufficientFreeAddresses"
                | "ClusterUnreachable" => code.as_str(),
                _ => "Unknown",
            };
            json!([{ "code": issue_code, "message": msg, "resourceIds": [format!("eks-{}-{id}", ng.name)] }])
        }
        _ => json!([]),
    };
    let role = if ng.node_role.is_empty() {
        format!("arn:aws:iam::{acct}:role/{}-eks-node-role", c.name)
    } else {
        ng.node_role.clone()
    };
    json!({
        "nodegroupName": ng.name,
        "nodegroupArn": format!("arn:aws:eks:{}:{acct}:nodegroup/{}/{}/{id}", c.region, c.name, ng.name),
        "clusterName": c.name,
        "version": format!("1.{}", ng.version),
        "releaseVersion": ng.release_version,
        "createdAt": ts(ng.created_at),
        "modifiedAt": ts(ng.modified_at),
        "status": c.nodegroup_status(ng),
        "capacityType": ng.capacity_type,
        "scalingConfig": { "minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size },
        "instanceTypes": ng.instance_types,
        "subnets": ng.subnets,
        "amiType": ng.ami_type,
        "nodeRole": role,
        "labels": ng.labels,
        "taints": ng.taints,
        "resources": { "autoScalingGroups": [ { "name": format!("eks-{}-{id}", ng.name) } ] },
        "diskSize": ng.disk_size,
        "health": { "issues": issues },
        "updateConfig": update_config,
        "tags": ng.tags
    })
}

pub fn addon_json(w: &World, c: &Cluster, a: &Addon) -> Value {
    let id = fake_uuid(&format!("{}/{}/{}", c.name, a.name, a.created_at));
    let mut m = json!({
        "addonName": a.name,
        "clusterName": c.name,
        "status": c.addon_status(&a.name),
        "addonVersion": a.version,
        "health": { "issues": [] },
        "addonArn": format!("arn:aws:eks:{}:{}:addon/{}/{}/{id}", c.region, w.settings.account_id, c.name, a.name),
        "createdAt": ts(a.created_at),
        "modifiedAt": ts(a.modified_at),
        "tags": a.tags
    });
    if let Some(v) = &a.configuration_values {
        m["configurationValues"] = json!(v);
    }
    if let Some(v) = &a.service_account_role_arn {
        m["serviceAccountRoleArn"] = json!(v);
    }
    m
}

pub fn update_json(u: &Update) -> Value {
    json!({
        "id": u.id,
        "status": u.status.as_str(),
        "type": u.kind,
        "params": u.params.iter().map(|(t, v)| json!({"type": t, "value": v})).collect::<Vec<_>>(),
        "createdAt": ts(u.created_at),
        "errors": u.errors.iter().map(|e| json!({
            "errorCode": e.error_code,
            "errorMessage": e.error_message,
            "resourceIds": e.resource_ids
        })).collect::<Vec<_>>()
    })
}

// ---------------------------------------------------------------------------------------------
// Read operations
// ---------------------------------------------------------------------------------------------

fn list_clusters(w: &World, q: &Query) -> R {
    let names: Vec<String> = w.clusters.keys().cloned().collect();
    paginate(q, names, "clusters")
}

fn describe_cluster_versions(w: &World, q: &Query) -> R {
    let today = w.settings.catalog_date;
    let default = catalog::default_version(today).minor;
    let cluster_type = q.get("clusterType");
    let wanted = q.all("clusterVersions");
    let default_only = q.bool("defaultOnly")?.unwrap_or(false);
    let include_all = q.bool("includeAll")?.unwrap_or(false);
    let version_status = q.get("versionStatus");
    if let Some(vs) = version_status {
        if !["UNSUPPORTED", "STANDARD_SUPPORT", "EXTENDED_SUPPORT"].contains(&vs) {
            return Err(EksError::invalid_param(format!(
                "versionStatus {vs} is invalid; valid values: UNSUPPORTED, STANDARD_SUPPORT, EXTENDED_SUPPORT"
            )));
        }
    }
    let status = q.get("status");
    if let Some(s) = status {
        if !["unsupported", "standard-support", "extended-support"].contains(&s) {
            return Err(EksError::invalid_param(format!(
                "status {s} is invalid; valid values: unsupported, standard-support, extended-support"
            )));
        }
    }
    let mut out = Vec::new();
    if cluster_type.is_none_or(|t| t == "eks") {
        for v in catalog::VERSIONS
            .iter()
            .rev()
            .filter(|v| v.released_by(today))
        {
            let st = v.status_on(today);
            let name = v.name();
            if !wanted.is_empty() && !wanted.contains(&name.as_str()) {
                continue;
            }
            if default_only && v.minor != default {
                continue;
            }
            if let Some(vs) = version_status {
                if st.version_status() != vs {
                    continue;
                }
            } else if let Some(s) = status {
                if st.cluster_version_status() != s {
                    continue;
                }
            } else if !include_all && wanted.is_empty() && st == SupportStatus::Unsupported {
                continue;
            }
            out.push(json!({
                "clusterVersion": name,
                "clusterType": "eks",
                "defaultPlatformVersion": v.latest_platform_version(),
                "defaultVersion": v.minor == default,
                "releaseDate": ts(date_secs(v.release)),
                "endOfStandardSupportDate": ts(date_secs(v.end_standard)),
                "endOfExtendedSupportDate": ts(date_secs(v.end_extended)),
                "status": st.cluster_version_status(),
                "versionStatus": st.version_status(),
                "kubernetesPatchVersion": v.patch_version
            }));
        }
    }
    let (page, next) = page(q, out)?;
    let mut m = json!({ "clusterVersions": page });
    if let Some(n) = next {
        m["nextToken"] = json!(n);
    }
    Ok(Done::read(m))
}

fn date_secs(d: (i32, u8, u8)) -> f64 {
    catalog::date(d).midnight().assume_utc().unix_timestamp() as f64
}

fn describe_addon_versions(w: &World, q: &Query) -> R {
    let today = w.settings.catalog_date;
    let k8s = match q.get("kubernetesVersion") {
        None => None,
        Some(v) => Some(parse_minor(v).ok_or_else(|| {
            EksError::invalid_param(format!("Kubernetes version {v} is not valid"))
        })?),
    };
    let name = q.get("addonName");
    if let Some(n) = name {
        if catalog::addon(n).is_none() {
            return Err(
                EksError::not_found(format!("Addon {n} specified is not supported")).addon(n),
            );
        }
    }
    let types = q.all("types");
    let publishers = q.all("publishers");
    let owners = q.all("owners");
    let minors: Vec<u32> = catalog::VERSIONS
        .iter()
        .rev()
        .filter(|v| v.released_by(today))
        .map(|v| v.minor)
        .collect();
    let mut addons = Vec::new();
    for a in catalog::ADDONS {
        if name.is_some_and(|n| n != a.name)
            || (!types.is_empty() && !types.contains(&a.kind))
            || (!publishers.is_empty() && !publishers.contains(&"eks"))
            || (!owners.is_empty() && !owners.contains(&"aws"))
        {
            continue;
        }
        let mut versions = Vec::new();
        for v in a.versions.iter().rev() {
            let compat: Vec<Value> = minors
                .iter()
                .filter(|m| v.compatible_with(**m) && k8s.is_none_or(|k| k == **m))
                .map(|m| {
                    json!({
                        "clusterVersion": format!("1.{m}"),
                        "platformVersions": ["*"],
                        "defaultVersion": v.default_for.contains(m)
                    })
                })
                .collect();
            if compat.is_empty() {
                continue;
            }
            versions.push(json!({
                "addonVersion": v.version,
                "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2"],
                "compatibilities": compat,
                "requiresConfiguration": false,
                "requiresIamPermissions": a.requires_iam_permissions
            }));
        }
        if versions.is_empty() {
            continue;
        }
        addons.push(json!({
            "addonName": a.name,
            "type": a.kind,
            "addonVersions": versions,
            "publisher": "eks",
            "owner": "aws",
            "defaultNamespace": "kube-system"
        }));
    }
    let (page, next) = page(q, addons)?;
    let mut m = json!({ "addons": page });
    if let Some(n) = next {
        m["nextToken"] = json!(n);
    }
    Ok(Done::read(m))
}

fn list_updates(w: &World, c: &str, q: &Query) -> R {
    let cl = cluster(w, c)?;
    let ng = q.get("nodegroupName");
    let ad = q.get("addonName");
    if let Some(n) = ng {
        if !cl.node_groups.contains_key(n)
            && !cl.updates.iter().any(|u| u.nodegroup.as_deref() == Some(n))
        {
            nodegroup(cl, n)?;
        }
    }
    if let Some(a) = ad {
        if !cl.addons.contains_key(a) && !cl.updates.iter().any(|u| u.addon.as_deref() == Some(a)) {
            addon(cl, a)?;
        }
    }
    let ids: Vec<String> = cl
        .updates
        .iter()
        .filter(|u| match (ng, ad) {
            (Some(n), _) => u.nodegroup.as_deref() == Some(n),
            (None, Some(a)) => u.addon.as_deref() == Some(a),
            (None, None) => u.nodegroup.is_none() && u.addon.is_none(),
        })
        .map(|u| u.id.clone())
        .collect();
    paginate(q, ids, "updateIds")
}

fn describe_update(w: &World, c: &str, id: &str, q: &Query) -> R {
    let cl = cluster(w, c)?;
    let ng = q.get("nodegroupName");
    let ad = q.get("addonName");
    let found = cl
        .updates
        .iter()
        .find(|u| u.id == id && u.nodegroup.as_deref() == ng && u.addon.as_deref() == ad);
    match found {
        Some(u) => Ok(Done::read(json!({ "update": update_json(u) }))),
        None => {
            let mut e = EksError::not_found(format!("No update found for ID: {id}")).cluster(c);
            if let Some(n) = ng {
                e = e.nodegroup(n);
            }
            if let Some(a) = ad {
                e = e.addon(a);
            }
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

fn find_replay(
    c: &Cluster,
    op: &str,
    ng: Option<&str>,
    ad: Option<&str>,
    token: Option<&str>,
) -> Option<Update> {
    let token = token?;
    c.updates
        .iter()
        .find(|u| {
            u.operation == op
                && u.token.as_deref() == Some(token)
                && u.nodegroup.as_deref() == ng
                && u.addon.as_deref() == ad
        })
        .cloned()
}

fn replayed(u: &Update) -> Done {
    Done {
        body: json!({ "update": update_json(u) }),
        update_id: Some(u.id.clone()),
        replay: true,
        mutated: false,
    }
}

/// Take the armed `fail=` fault for this resource, if any.
fn take_fail(
    inner: &mut Inner,
    cluster: &str,
    ng: Option<&str>,
    ad: Option<&str>,
    skip_pod_eviction: bool,
) -> Option<(String, String)> {
    let i = inner.faults.fails.iter().position(|f| {
        f.target.matches(cluster, ng, ad) && !(skip_pod_eviction && f.code == "PodEvictionFailure")
    })?;
    let f = inner.faults.fails.remove(i);
    let msg = f
        .message
        .clone()
        .unwrap_or_else(|| default_message(&f.code, &f.target));
    Some((f.code, msg))
}

#[allow(clippy::too_many_arguments)]
fn start_update(
    cx: Ctx<'_>,
    cluster: &str,
    op: &str,
    ng: Option<&str>,
    ad: Option<&str>,
    kind: &str,
    params: Vec<(String, String)>,
    token: Option<&str>,
    sim_seconds: f64,
    fail: Option<(String, String)>,
) -> Done {
    let u = Update {
        id: uuid::Uuid::new_v4().to_string(),
        operation: op.to_string(),
        nodegroup: ng.map(str::to_string),
        addon: ad.map(str::to_string),
        kind: kind.to_string(),
        params,
        created_at: cx.now,
        status: UpdateStatus::InProgress,
        errors: vec![],
        token: token.map(str::to_string),
        deadline: cx.now + sim_seconds / cx.speed,
        fail,
        force: false,
    };
    let body = json!({ "update": update_json(&u) });
    let id = u.id.clone();
    cx.inner
        .world
        .clusters
        .get_mut(cluster)
        .expect("cluster checked")
        .updates
        .push(u);
    Done {
        body,
        update_id: Some(id),
        replay: false,
        mutated: true,
    }
}

fn update_cluster_version(cx: Ctx<'_>, name: &str, b: &Map<String, Value>) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, name)?;
    let version = opt_str(b, "version")?
        .ok_or_else(|| EksError::invalid_param("version is required").cluster(name))?;
    let token = opt_str(b, "clientRequestToken")?;
    let _force = opt_bool(b, "force")?;
    if let Some(u) = find_replay(c, "UpdateClusterVersion", None, None, token) {
        return Ok(replayed(&u));
    }
    if let Some(u) = c.cluster_update_in_progress() {
        return Err(EksError::in_use(format!(
            "Cluster {name} has an update in progress ({}, id {}); wait for it to complete",
            u.kind, u.id
        ))
        .cluster(name));
    }
    let cur = c.version;
    let target = parse_minor(version);
    if target == Some(cur) {
        return Err(EksError::invalid_param(format!(
            "Cluster is already at the desired configuration with version: {version}"
        ))
        .cluster(name));
    }
    let Some(target) = target.filter(|t| *t == cur + 1) else {
        return Err(EksError::invalid_param(format!(
            "Unsupported Kubernetes minor version update from 1.{cur} to {version}"
        ))
        .cluster(name));
    };
    let today = w.settings.catalog_date;
    let kv = catalog::version(target)
        .filter(|v| v.released_by(today) && v.status_on(today) != SupportStatus::Unsupported)
        .ok_or_else(|| {
            EksError::invalid_param(format!(
                "Kubernetes version {version} is not supported by Amazon EKS"
            ))
            .cluster(name)
        })?;
    // Managed node group skew.
    let strict = w.settings.strict_nodegroup_skew;
    let mut offenders = Vec::new();
    for ng in c.node_groups.values() {
        if matches!(ng.lifecycle, Lifecycle::Deleting { .. }) {
            continue;
        }
        let ok = if strict {
            ng.version == cur
        } else {
            let allowed = if ng.version >= 25 { 3 } else { 2 };
            ng.version + allowed >= target
        };
        if !ok {
            offenders.push(ng);
        }
    }
    if let Some(first) = offenders.first() {
        let names: Vec<String> = offenders
            .iter()
            .map(|n| format!("{} (1.{})", n.name, n.version))
            .collect();
        let msg = if strict {
            format!(
                "Nodegroup(s) {} must be updated to match cluster version 1.{cur} before updating cluster version to {version}",
                names.join(", ")
            )
        } else {
            format!(
                "Nodegroup(s) {} would be too far behind the control plane after updating to {version} (kubelet may be at most 3 minor versions older than the API server, 2 for kubelet < 1.25); update the node group(s) first",
                names.join(", ")
            )
        };
        return Err(EksError::invalid_request(msg)
            .cluster(name)
            .nodegroup(&first.name.clone()));
    }
    let pv = kv.latest_platform_version();
    let fail = take_fail(cx.inner, name, None, None, false);
    Ok(start_update(
        cx,
        name,
        "UpdateClusterVersion",
        None,
        None,
        "VersionUpdate",
        vec![
            ("Version".into(), format!("1.{target}")),
            ("PlatformVersion".into(), pv),
        ],
        token,
        durations::CLUSTER_VERSION,
        fail,
    ))
}

fn nodegroup_busy(c: &Cluster, ng: &NodeGroup) -> Result<(), EksError> {
    let status = c.nodegroup_status(ng);
    if status != "ACTIVE" {
        return Err(EksError::in_use(format!(
            "Nodegroup {} is currently in {status} state and cannot be updated",
            ng.name
        ))
        .cluster(&c.name)
        .nodegroup(&ng.name));
    }
    Ok(())
}

fn update_nodegroup_version(cx: Ctx<'_>, cname: &str, nname: &str, b: &Map<String, Value>) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, cname)?;
    let ng = nodegroup(c, nname)?;
    let version = opt_str(b, "version")?;
    let release = opt_str(b, "releaseVersion")?;
    let force = opt_bool(b, "force")?.unwrap_or(false);
    let token = opt_str(b, "clientRequestToken")?;
    let lt = opt_obj(b, "launchTemplate")?;
    if let Some(u) = find_replay(c, "UpdateNodegroupVersion", Some(nname), None, token) {
        return Ok(replayed(&u));
    }
    let e_param = |m: String| EksError::invalid_param(m).cluster(cname).nodegroup(nname);
    if let Some(u) = c.cluster_update_in_progress() {
        return Err(EksError::in_use(format!(
            "Cluster {cname} is currently being updated (update {}); node groups cannot be updated until it completes",
            u.id
        ))
        .cluster(cname)
        .nodegroup(nname));
    }
    nodegroup_busy(c, ng)?;
    let target = match version {
        None => ng.version,
        Some(v) => parse_minor(v)
            .ok_or_else(|| e_param(format!("Requested Kubernetes version {v} is invalid")))?,
    };
    if target > c.version {
        return Err(e_param(format!(
            "Requested Nodegroup version 1.{target} is newer than the cluster's Kubernetes version 1.{}; update the cluster first",
            c.version
        )));
    }
    if target < ng.version {
        return Err(e_param(format!(
            "Requested Nodegroup version 1.{target} is older than the current version 1.{}; node groups cannot be downgraded",
            ng.version
        )));
    }
    let kv = catalog::version(target).ok_or_else(|| {
        e_param(format!(
            "Requested Kubernetes version 1.{target} is not supported"
        ))
    })?;
    let release_version = match release {
        None => kv.latest_ami_release().to_string(),
        Some(r) => {
            if !kv.ami_releases.contains(&r) {
                return Err(e_param(format!(
                    "Requested release version {r} is not valid for kubernetes version 1.{target}"
                )));
            }
            r.to_string()
        }
    };
    if target == ng.version {
        let cur_idx = kv
            .ami_releases
            .iter()
            .position(|x| *x == ng.release_version);
        let new_idx = kv.ami_releases.iter().position(|x| *x == release_version);
        if let (Some(ci), Some(ni)) = (cur_idx, new_idx) {
            if ni < ci {
                return Err(e_param(format!(
                    "Requested release version {release_version} is older than the current release version {}",
                    ng.release_version
                )));
            }
        }
        if release_version == ng.release_version && lt.is_none() {
            return Err(e_param(format!(
                "Nodegroup {nname} is already at version 1.{target} with release version {release_version}"
            )));
        }
    }
    let mut params = vec![
        ("Version".to_string(), format!("1.{target}")),
        ("ReleaseVersion".to_string(), release_version),
    ];
    if let Some(lt) = lt {
        if let Some(n) = lt.get("name").and_then(Value::as_str) {
            params.push(("LaunchTemplateName".into(), n.into()));
        }
        if let Some(v) = lt.get("version").and_then(Value::as_str) {
            params.push(("LaunchTemplateVersion".into(), v.into()));
        }
    }
    let batches = ng.batches();
    let fail = take_fail(cx.inner, cname, Some(nname), None, force);
    // Without an armed `fail=` fault the update really replaces nodes (surge, drain through
    // PDBs, terminate) on the Kubernetes side, which decides when it ends; with one, it keeps
    // the fixed duration and fails at the end.
    let secs = if fail.is_none() {
        f64::INFINITY
    } else {
        durations::NODEGROUP_VERSION_PER_BATCH * batches as f64
    };
    let mut done = start_update(
        Ctx {
            inner: &mut *cx.inner,
            now: cx.now,
            speed: cx.speed,
        },
        cname,
        "UpdateNodegroupVersion",
        Some(nname),
        None,
        "VersionUpdate",
        params,
        token,
        secs,
        fail,
    );
    if force {
        if let Some(u) = cx
            .inner
            .world
            .clusters
            .get_mut(cname)
            .and_then(|c| c.updates.last_mut())
        {
            u.force = true;
        }
    }
    done.mutated = true;
    Ok(done)
}

fn update_nodegroup_config(cx: Ctx<'_>, cname: &str, nname: &str, b: &Map<String, Value>) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, cname)?;
    let ng = nodegroup(c, nname)?;
    let token = opt_str(b, "clientRequestToken")?;
    if let Some(u) = find_replay(c, "UpdateNodegroupConfig", Some(nname), None, token) {
        return Ok(replayed(&u));
    }
    let e_param = |m: String| EksError::invalid_param(m).cluster(cname).nodegroup(nname);
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(l) = opt_obj(b, "labels")? {
        if let Some(add) = str_map(l, "addOrUpdateLabels")? {
            if !add.is_empty() {
                params.push((
                    "LabelsToAdd".into(),
                    serde_json::to_string(&add).expect("json"),
                ));
            }
        }
        if let Some(rm) = str_list(l, "removeLabels")? {
            if !rm.is_empty() {
                params.push((
                    "LabelsToRemove".into(),
                    serde_json::to_string(&rm).expect("json"),
                ));
            }
        }
    }
    if let Some(t) = opt_obj(b, "taints")? {
        if let Some(add) = taints(t, "addOrUpdateTaints")? {
            if !add.is_empty() {
                params.push((
                    "TaintsToAdd".into(),
                    serde_json::to_string(&add).expect("json"),
                ));
            }
        }
        if let Some(rm) = taints(t, "removeTaints")? {
            if !rm.is_empty() {
                params.push((
                    "TaintsToRemove".into(),
                    serde_json::to_string(&rm).expect("json"),
                ));
            }
        }
    }
    if let Some(s) = opt_obj(b, "scalingConfig")? {
        let min = opt_u32(s, "minSize")?;
        let max = opt_u32(s, "maxSize")?;
        let desired = opt_u32(s, "desiredSize")?;
        check_scaling(
            min.unwrap_or(ng.min_size),
            max.unwrap_or(ng.max_size),
            desired.unwrap_or(ng.desired_size),
        )
        .map_err(e_param)?;
        for (k, v) in [("MinSize", min), ("MaxSize", max), ("DesiredSize", desired)] {
            if let Some(v) = v {
                params.push((k.into(), v.to_string()));
            }
        }
    }
    if let Some(u) = opt_obj(b, "updateConfig")? {
        let mu = opt_u32(u, "maxUnavailable")?;
        let mup = opt_u32(u, "maxUnavailablePercentage")?;
        check_update_config(mu, mup).map_err(e_param)?;
        if let Some(n) = mu {
            params.push(("MaxUnavailable".into(), n.to_string()));
        }
        if let Some(n) = mup {
            params.push(("MaxUnavailablePercentage".into(), n.to_string()));
        }
        if let Some(s) = opt_str(u, "updateStrategy")? {
            if !world::UPDATE_STRATEGIES.contains(&s) {
                return Err(e_param(format!(
                    "updateConfig.updateStrategy {s} is invalid; valid values: DEFAULT, MINIMAL"
                )));
            }
            params.push(("UpdateStrategy".into(), s.into()));
        }
    }
    if params.is_empty() {
        return Err(e_param(format!(
            "No changes were requested for nodegroup {nname}"
        )));
    }
    nodegroup_busy(c, ng)?;
    let fail = take_fail(cx.inner, cname, Some(nname), None, false);
    Ok(start_update(
        cx,
        cname,
        "UpdateNodegroupConfig",
        Some(nname),
        None,
        "ConfigUpdate",
        params,
        token,
        durations::NODEGROUP_CONFIG,
        fail,
    ))
}

fn update_addon(cx: Ctx<'_>, cname: &str, aname: &str, b: &Map<String, Value>) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, cname)?;
    let a = addon(c, aname)?;
    let token = opt_str(b, "clientRequestToken")?;
    if let Some(u) = find_replay(c, "UpdateAddon", None, Some(aname), token) {
        return Ok(replayed(&u));
    }
    let e_param = |m: String| EksError::invalid_param(m).cluster(cname).addon(aname);
    let version = opt_str(b, "addonVersion")?;
    let resolve = opt_str(b, "resolveConflicts")?;
    let config = opt_str(b, "configurationValues")?;
    let role = opt_str(b, "serviceAccountRoleArn")?;
    if let Some(r) = resolve {
        if !["OVERWRITE", "NONE", "PRESERVE"].contains(&r) {
            return Err(e_param(format!(
                "resolveConflicts {r} is invalid; valid values: OVERWRITE, NONE, PRESERVE"
            )));
        }
    }
    if let Some(v) = version {
        let cat = catalog::addon(aname)
            .ok_or_else(|| e_param(format!("Addon {aname} is not supported")))?;
        let ok = cat.find(v).is_some_and(|x| x.compatible_with(c.version));
        if !ok {
            let list: Vec<&str> = cat
                .compatible(c.version)
                .iter()
                .map(|x| x.version)
                .collect();
            return Err(e_param(format!(
                "Addon version {v} is not compatible with Kubernetes version 1.{} for addon {aname}. Compatible versions: {}",
                c.version,
                list.join(", ")
            )));
        }
    }
    if c.cluster_update_in_progress().is_some() {
        return Err(EksError::in_use(format!(
            "Cluster {cname} is currently being updated; add-ons cannot be updated until it completes"
        ))
        .cluster(cname)
        .addon(aname));
    }
    if c.addon_update_in_progress(aname).is_some() {
        return Err(
            EksError::in_use(format!("Addon {aname} is currently being updated"))
                .cluster(cname)
                .addon(aname),
        );
    }
    let mut params = Vec::new();
    params.push((
        "AddonVersion".to_string(),
        version.unwrap_or(&a.version).to_string(),
    ));
    if let Some(r) = resolve {
        params.push(("ResolveConflicts".into(), r.into()));
    }
    if let Some(v) = config {
        params.push(("ConfigurationValues".into(), v.into()));
    }
    if let Some(v) = role {
        params.push(("ServiceAccountRoleArn".into(), v.into()));
    }
    let fail = take_fail(cx.inner, cname, None, Some(aname), false);
    Ok(start_update(
        cx,
        cname,
        "UpdateAddon",
        None,
        Some(aname),
        "AddonUpdate",
        params,
        token,
        durations::ADDON,
        fail,
    ))
}

fn create_nodegroup(cx: Ctx<'_>, cname: &str, b: &Map<String, Value>) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, cname)?;
    let name = opt_str(b, "nodegroupName")?
        .ok_or_else(|| EksError::invalid_param("nodegroupName is required").cluster(cname))?;
    let token = opt_str(b, "clientRequestToken")?;
    if let Some(existing) = c.node_groups.get(name) {
        if token.is_some() && existing.create_token.as_deref() == token {
            return Ok(Done {
                body: json!({ "nodegroup": nodegroup_json(w, c, existing) }),
                update_id: None,
                replay: true,
                mutated: false,
            });
        }
        return Err(EksError::in_use(format!(
            "NodeGroup already exists with name {name} and cluster name {cname}"
        ))
        .cluster(cname)
        .nodegroup(name));
    }
    let e_param = |m: String| EksError::invalid_param(m).cluster(cname).nodegroup(name);
    if !world::valid_name(name) {
        return Err(e_param(format!("Nodegroup name {name} is invalid")));
    }
    let subnets = str_list(b, "subnets")?.unwrap_or_default();
    if subnets.is_empty() {
        return Err(e_param("subnets is required and must not be empty".into()));
    }
    let node_role = opt_str(b, "nodeRole")?
        .ok_or_else(|| e_param("nodeRole is required".into()))?
        .to_string();
    let version = match opt_str(b, "version")? {
        None => c.version,
        Some(v) => parse_minor(v)
            .filter(|m| catalog::version(*m).is_some())
            .ok_or_else(|| e_param(format!("Requested Kubernetes version {v} is invalid")))?,
    };
    if version > c.version {
        return Err(e_param(format!(
            "Requested Nodegroup version 1.{version} is newer than the cluster's Kubernetes version 1.{}",
            c.version
        )));
    }
    let kv = catalog::version(version).expect("checked");
    let release_version = match opt_str(b, "releaseVersion")? {
        None => kv.latest_ami_release().to_string(),
        Some(r) if kv.ami_releases.contains(&r) => r.to_string(),
        Some(r) => {
            return Err(e_param(format!(
                "Requested release version {r} is not valid for kubernetes version 1.{version}"
            )))
        }
    };
    let (mut min, mut max, mut desired) = (1, 2, 2);
    if let Some(s) = opt_obj(b, "scalingConfig")? {
        min = opt_u32(s, "minSize")?.unwrap_or(min);
        max = opt_u32(s, "maxSize")?.unwrap_or(max.max(min));
        desired = opt_u32(s, "desiredSize")?.unwrap_or(desired.clamp(min, max.max(min)));
    }
    check_scaling(min, max, desired).map_err(e_param)?;
    let (mut mu, mut mup, mut strategy) = (Some(1), None, None);
    if let Some(u) = opt_obj(b, "updateConfig")? {
        let a = opt_u32(u, "maxUnavailable")?;
        let p = opt_u32(u, "maxUnavailablePercentage")?;
        check_update_config(a, p).map_err(e_param)?;
        if a.is_some() || p.is_some() {
            (mu, mup) = (a, p);
        }
        strategy = opt_str(u, "updateStrategy")?.map(str::to_string);
    }
    let ami_type = opt_str(b, "amiType")?
        .unwrap_or(world::default_ami_type(version))
        .to_string();
    if !world::AMI_TYPES.contains(&ami_type.as_str()) {
        return Err(e_param(format!("amiType {ami_type} is invalid")));
    }
    let capacity_type = opt_str(b, "capacityType")?
        .unwrap_or("ON_DEMAND")
        .to_string();
    if !world::CAPACITY_TYPES.contains(&capacity_type.as_str()) {
        return Err(e_param(format!("capacityType {capacity_type} is invalid")));
    }
    let ng = NodeGroup {
        name: name.to_string(),
        version,
        release_version,
        instance_types: str_list(b, "instanceTypes")?.unwrap_or_else(|| vec!["t3.medium".into()]),
        ami_type,
        capacity_type,
        min_size: min,
        max_size: max,
        desired_size: desired,
        max_unavailable: mu,
        max_unavailable_percentage: mup,
        update_strategy: strategy,
        labels: str_map(b, "labels")?.unwrap_or_default(),
        taints: taints(b, "taints")?.unwrap_or_default(),
        tags: str_map(b, "tags")?.unwrap_or_default(),
        disk_size: opt_u32(b, "diskSize")?.unwrap_or(20),
        subnets,
        node_role,
        created_at: cx.now,
        modified_at: cx.now,
        lifecycle: Lifecycle::Creating {
            deadline: cx.now + durations::NODEGROUP_CREATE / cx.speed,
        },
        failure: None,
        create_token: token.map(str::to_string),
    };
    let name = name.to_string();
    let fail = take_fail(cx.inner, cname, Some(&name), None, false);
    let c = cx.inner.world.clusters.get_mut(cname).expect("checked");
    let mut ng = ng;
    ng.failure = fail;
    c.node_groups.insert(name.clone(), ng);
    let w = &cx.inner.world;
    let c = &w.clusters[cname];
    Ok(Done {
        body: json!({ "nodegroup": nodegroup_json(w, c, &c.node_groups[&name]) }),
        update_id: None,
        replay: false,
        mutated: true,
    })
}

fn delete_nodegroup(cx: Ctx<'_>, cname: &str, nname: &str) -> R {
    let w = &cx.inner.world;
    let c = cluster(w, cname)?;
    let ng = nodegroup(c, nname)?;
    let status = c.nodegroup_status(ng);
    if !matches!(
        status,
        "ACTIVE" | "CREATE_FAILED" | "DELETE_FAILED" | "DEGRADED"
    ) {
        return Err(EksError::in_use(format!(
            "Nodegroup {nname} is currently in {status} state and cannot be deleted"
        ))
        .cluster(cname)
        .nodegroup(nname));
    }
    let fail = take_fail(cx.inner, cname, Some(nname), None, false);
    let c = cx.inner.world.clusters.get_mut(cname).expect("checked");
    let ng = c.node_groups.get_mut(nname).expect("checked");
    ng.lifecycle = Lifecycle::Deleting {
        deadline: cx.now + durations::NODEGROUP_DELETE / cx.speed,
    };
    ng.failure = fail;
    ng.modified_at = cx.now;
    let w = &cx.inner.world;
    let c = &w.clusters[cname];
    Ok(Done {
        body: json!({ "nodegroup": nodegroup_json(w, c, &c.node_groups[nname]) }),
        update_id: None,
        replay: false,
        mutated: true,
    })
}

/// HTTP status for successful responses (every EKS operation here answers 200).
pub const OK: StatusCode = StatusCode::OK;

/// `fmt_time` re-export for call records.
pub fn now_rfc3339(t: f64) -> String {
    fmt_time(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse(&Method::GET, "/clusters/demo"),
            Some(Route::DescribeCluster("demo".into()))
        );
        assert_eq!(
            Route::parse(
                &Method::POST,
                "/clusters/demo/node-groups/ng%2D1/update-version"
            ),
            Some(Route::UpdateNodegroupVersion("demo".into(), "ng-1".into()))
        );
        assert_eq!(
            Route::parse(&Method::GET, "/addons/supported-versions"),
            Some(Route::DescribeAddonVersions)
        );
        assert_eq!(Route::parse(&Method::PUT, "/clusters/demo"), None);
        assert_eq!(Route::parse(&Method::GET, "/nope"), None);
    }

    #[test]
    fn query_and_tokens() {
        let q = parse_query(Some("clusterVersions=1.28&clusterVersions=1.29&x=a%20b"));
        assert_eq!(q.len(), 3);
        assert_eq!(q[2].1, "a b");
        let qq = Query(&q);
        assert_eq!(qq.all("clusterVersions"), vec!["1.28", "1.29"]);
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        assert_eq!(decode_token("garbage"), None);
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
