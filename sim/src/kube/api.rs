//! The Kubernetes REST API of one simulated cluster: discovery, get/list/watch with
//! selectors and pagination, create/update/patch/delete, pods/eviction, Table printing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::ctrl::{self, ApiErr};
use super::select::{json_patch, merge_patch, strategic_merge_patch, FieldSelector, LabelSelector};
use super::table::table;
use super::util;
use super::{KCluster, Kind, WEvent, KINDS};
use crate::catalog;
use crate::eks::parse_query;
use crate::faults::Fault;
use crate::state::{now_secs, App};

/// State of one cluster's API server.
#[derive(Clone)]
pub struct KubeSrv {
    pub app: Arc<App>,
    pub cluster: String,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

fn json_resp(code: u16, v: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        "audit-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid"),
    );
    r
}

fn status_body(e: &ApiErr) -> Value {
    let mut v = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": e.message, "reason": e.reason, "code": e.code });
    if !e.details.is_null() {
        v["details"] = e.details.clone();
    } else {
        v["details"] = json!({});
    }
    v
}

fn err_resp(e: ApiErr) -> Response {
    json_resp(e.code, &status_body(&e))
}

fn not_found_route() -> Response {
    let mut e = ApiErr::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    e.details = json!({});
    err_resp(e)
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

struct Res {
    kind: Kind,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Res(Res),
}

fn find_kind(group: &str, version: &str, plural: &str) -> Option<Kind> {
    KINDS.iter().copied().find(|k| {
        let i = k.info();
        i.group == group && i.version == version && i.plural == plural
    })
}

fn parse_route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["api"] => return Some(Route::Api),
        ["apis"] => return Some(Route::Apis),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v] => return Some(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::GroupVersion(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.len() >= 3 && rest[0] == "namespaces" {
        if let Some(kind) = find_kind(group, version, rest[2]).filter(|k| k.info().namespaced) {
            return Some(Route::Res(Res {
                kind,
                ns: Some(rest[1].to_string()),
                name: rest.get(3).map(|s| s.to_string()),
                sub: rest.get(4).map(|s| s.to_string()),
            }));
        }
    }
    let kind = find_kind(group, version, rest[0])?;
    if rest.len() > 3 {
        return None;
    }
    Some(Route::Res(Res {
        kind,
        ns: None,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    }))
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

fn verbs(kind: Kind) -> Vec<&'static str> {
    match kind {
        Kind::Namespace | Kind::Node => vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        _ => vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
    }
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut res = Vec::new();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut any = false;
    for k in KINDS {
        let i = k.info();
        if i.group != group || i.version != version {
            continue;
        }
        any = true;
        let mut r = json!({ "name": i.plural, "singularName": i.singular, "namespaced": i.namespaced, "kind": i.kind,
            "verbs": verbs(k), "storageVersionHash": format!("{:x}", util::fnv(i.plural) & 0xffff_ffff) });
        if !i.short.is_empty() {
            r["shortNames"] = json!(i.short);
        }
        if !i.categories.is_empty() {
            r["categories"] = json!(i.categories);
        }
        res.push(r);
        match k {
            Kind::Pod => {
                res.push(json!({ "name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"] }));
                res.push(json!({ "name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"] }));
            }
            Kind::Node
            | Kind::Namespace
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::StatefulSet
            | Kind::DaemonSet
            | Kind::Pdb
            | Kind::Job
            | Kind::Crd
            | Kind::Plan
            | Kind::Ingress
            | Kind::CronJob
            | Kind::Hpa
            | Kind::FlowSchema => {
                res.push(json!({ "name": format!("{}/status", i.plural), "singularName": "", "namespaced": i.namespaced, "kind": i.kind, "verbs": ["get", "patch", "update"] }));
            }
            Kind::Event | Kind::ServiceAccount | Kind::ConfigMap | Kind::Secret => {}
        }
    }
    any.then(|| json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res }))
}

/// Groups every cluster serves, in the apiserver's group priority order (the order `/apis`
/// lists them); SUC clusters add `apiextensions.k8s.io` and `upgrade.cattle.io`.
const GROUPS: &[&str] = &[
    "apps",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "flowcontrol.apiserver.k8s.io",
];

/// `authorization.k8s.io/v1`: only SelfSubjectAccessReview, which (like every review kind)
/// can be created and never listed, as `kubectl auth can-i` uses it. The simulated
/// apiserver authorizes everything.
fn authorization(method: &Method, rest: &str, body: &[u8]) -> Response {
    const RES: &str = "selfsubjectaccessreviews";
    match (method.clone(), rest.trim_end_matches('/')) {
        (Method::GET, "") => {
            let mut v = group_obj("authorization.k8s.io");
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            json_resp(200, &v)
        }
        (Method::GET, "/v1") => json_resp(
            200,
            &json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1",
                "resources": [ { "name": RES, "singularName": "selfsubjectaccessreview", "namespaced": false,
                    "kind": "SelfSubjectAccessReview", "verbs": ["create"] } ] }),
        ),
        (Method::POST, "/v1/selfsubjectaccessreviews") => {
            let mut review: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return err_resp(bad_request(format!("the body of the request was in an unknown format ({e})"))),
            };
            review["status"] = json!({ "allowed": true });
            json_resp(201, &review)
        }
        (_, "/v1/selfsubjectaccessreviews") => err_resp(ApiErr::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({RES}.authorization.k8s.io)"),
        )),
        _ => not_found_route(),
    }
}

fn group_obj(g: &str) -> Value {
    // One served version per group (autoscaling is served at v2 only).
    let v = KINDS
        .iter()
        .map(|k| k.info())
        .find(|i| i.group == g)
        .map_or("v1", |i| i.version);
    json!({ "name": g, "versions": [ { "groupVersion": format!("{g}/{v}"), "version": v } ],
        "preferredVersion": { "groupVersion": format!("{g}/{v}"), "version": v } })
}

fn version_json(app: &App, cluster: &str) -> Value {
    let inner = app.lock();
    if let Some(k) = inner.world.kubeadm.get(cluster) {
        let git = format!("v{}", crate::kubeadm::fmt_version(k.version));
        return json!({ "major": k.version.0.to_string(), "minor": k.version.1.to_string(), "gitVersion": git,
            "gitCommit": format!("{:016x}{:016x}{:08x}", util::fnv(&git), util::fnv(cluster), util::fnv(&git) as u32),
            "gitTreeState": "clean", "buildDate": "2024-08-14T19:02:58Z", "goVersion": "go1.22.6",
            "compiler": "gc", "platform": "linux/amd64" });
    }
    if let Some(k) = inner.world.k3s.get(cluster) {
        let git = k.version();
        let minor = crate::k3s::minor(&git).unwrap_or(0);
        return json!({ "major": "1", "minor": format!("{minor}"), "gitVersion": git,
            "gitCommit": format!("{:016x}{:016x}{:08x}", util::fnv(&git), util::fnv(cluster), util::fnv(&git) as u32),
            "gitTreeState": "clean", "buildDate": "2024-09-19T21:03:32Z", "goVersion": "go1.22.6",
            "compiler": "gc", "platform": "linux/amd64" });
    }
    if let Some(a) = inner.world.aks.get(cluster) {
        let minor = crate::aks::minor(&a.version).unwrap_or(0);
        let git = format!("v{}", a.version);
        return json!({ "major": "1", "minor": format!("{minor}"), "gitVersion": git,
            "gitCommit": format!("{:016x}{:016x}{:08x}", util::fnv(&a.version), util::fnv(&git), util::fnv(cluster) as u32),
            "gitTreeState": "clean", "buildDate": "2025-04-04T19:42:40Z", "goVersion": "go1.23.6",
            "compiler": "gc", "platform": "linux/amd64" });
    }
    if let Some(g) = inner.world.gke.get(cluster) {
        let minor = catalog::gke_minor(&g.version).unwrap_or(0);
        let git = format!("v{}", g.version);
        return json!({ "major": "1", "minor": format!("{minor}"), "gitVersion": git,
            "gitCommit": format!("{:016x}{:016x}{:08x}", util::fnv(&g.version), util::fnv(&git), util::fnv(cluster) as u32),
            "gitTreeState": "clean", "buildDate": "2025-04-04T19:42:40Z", "goVersion": "go1.23.6",
            "compiler": "gc", "platform": "linux/amd64" });
    }
    let minor = inner
        .world
        .clusters
        .get(cluster)
        .map(|c| c.version)
        .unwrap_or(29);
    let patch = catalog::version(minor)
        .map(|v| v.patch_version)
        .unwrap_or("1.29.0");
    let git = format!(
        "v{patch}-eks-{:07x}",
        util::fnv(&format!("cp{patch}")) & 0xfff_ffff
    );
    json!({ "major": "1", "minor": format!("{minor}+"), "gitVersion": git,
        "gitCommit": format!("{:016x}{:016x}{:08x}", util::fnv(patch), util::fnv(&git), util::fnv(cluster) as u32),
        "gitTreeState": "clean", "buildDate": "2025-04-04T19:42:40Z", "goVersion": "go1.23.6",
        "compiler": "gc", "platform": "linux/amd64" })
}

// ---------------------------------------------------------------------------------------------
// Request entry point
// ---------------------------------------------------------------------------------------------

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

pub async fn handle(
    State(s): State<KubeSrv>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // `kubedown=`: the API server is gone, so the connection closes with no answer (the
    // way a restarting apiserver behind a load balancer looks to a client).
    let eviction = method == Method::POST && path.ends_with("/eviction");
    if s.app
        .lock()
        .faults
        .kube_down(&s.cluster, eviction, crate::state::now_secs())
    {
        std::panic::resume_unwind(Box::new("kup-sim: Kubernetes API down"));
    }
    let params = Params(parse_query(uri.query()));
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let wants_table = accept.contains("as=Table");
    if let Some(ch) = path.strip_prefix("/v1-release/channels/") {
        return channel_redirect(&s, ch);
    }
    let suc = {
        let inner = s.app.lock();
        inner
            .kube
            .clusters
            .get(&s.cluster)
            .is_some_and(|kc| kc.get(Kind::Crd, "", "plans.upgrade.cattle.io").is_some())
    };
    if let Some(rest) = path.strip_prefix("/apis/authorization.k8s.io") {
        return authorization(&method, rest, &body);
    }
    let Some(route) = parse_route(&path) else {
        let failing = {
            let inner = s.app.lock();
            inner
                .world
                .staging(&s.cluster)
                .map(|st| st.readyz_failing.clone())
                .unwrap_or_default()
        };
        return health(&path, &params, &failing).unwrap_or_else(not_found_route);
    };
    match route {
        Route::Version => json_resp(200, &version_json(&s.app, &s.cluster)),
        Route::Api => json_resp(
            200,
            &json!({ "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [ { "clientCIDR": "0.0.0.0/0", "serverAddress": "172.16.0.10:443" } ] }),
        ),
        Route::Apis => {
            let mut groups: Vec<Value> = GROUPS.iter().map(|g| group_obj(g)).collect();
            groups.push(group_obj("authorization.k8s.io"));
            if suc {
                // K3s/RKE2 with the system-upgrade-controller: the CRD and Plans.
                groups.push(group_obj("apiextensions.k8s.io"));
                groups.push(group_obj("upgrade.cattle.io"));
            }
            json_resp(
                200,
                &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
            )
        }
        Route::Group(g) if g == "upgrade.cattle.io" && !suc => not_found_route(),
        Route::GroupVersion(g, _) if g == "upgrade.cattle.io" && !suc => not_found_route(),
        Route::Res(r) if r.kind == Kind::Plan && !suc => not_found_route(),
        Route::Group(g)
            if GROUPS.contains(&g.as_str())
                || matches!(g.as_str(), "apiextensions.k8s.io" | "upgrade.cattle.io") =>
        {
            let mut v = group_obj(&g);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            json_resp(200, &v)
        }
        Route::Group(_) => not_found_route(),
        Route::GroupVersion(g, v) => match resource_list(&g, &v) {
            Some(l) => json_resp(200, &l),
            None => not_found_route(),
        },
        Route::Res(r) => {
            let watch = method == Method::GET && r.name.is_none() && params.flag("watch");
            let (fault, retry_after, stall_for) = {
                let mut inner = s.app.lock();
                let fault = inner.faults.roll_among(
                    &fault_endpoint(&method, &r, watch),
                    fault_kinds(watch, eviction),
                );
                (
                    fault,
                    inner.faults.spec.retry_after,
                    inner.faults.stall_for(),
                )
            };
            if let Some(refused) = fault.and_then(|f| refusal(f, retry_after)) {
                return crate::server::faulted(fault, err_resp(refused), retry_after, stall_for)
                    .await;
            }
            if watch {
                if fault == Some(Fault::Reset) {
                    std::panic::resume_unwind(Box::new("kup-sim: injected reset"));
                }
                return watch_resp(s, r, params, wants_table).await;
            }
            let ctype = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let manager = field_manager(
                params.get("fieldManager"),
                headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            );
            let now = now_secs();
            // The guard must be gone before the await below (the future must be Send).
            let result = {
                let mut inner = s.app.lock();
                let changed = inner.advance(now);
                let inner_ref = &mut *inner;
                let result = match inner_ref.kube.cluster_mut(&s.cluster) {
                    None => Err(ApiErr::new(503, "ServiceUnavailable", "cluster is gone")),
                    // Controllers run asynchronously (next tick), as in a real cluster; the
                    // eviction subresource updates the PDB it consumed inline.
                    Some(kc) => dispatch(
                        kc,
                        &method,
                        &r,
                        &params,
                        &Req {
                            ctype: &ctype,
                            body: &body,
                            manager: &manager,
                            wants_table,
                        },
                        now,
                    ),
                };
                if changed {
                    s.app.save_logged(&inner, now);
                }
                result
            };
            let resp = match result {
                Ok((code, v)) => json_resp(code, &v),
                Err(e) => err_resp(e),
            };
            crate::server::faulted(fault, resp, retry_after, stall_for).await
        }
    }
}

/// The `/_sim/faults` key of a Kubernetes API request: `kube`, the verb (`WATCH` for a
/// watch, else the HTTP method) and the route template, so `first` strikes each kind of
/// call once whatever object it names (e.g. `kube PATCH
/// /apis/upgrade.cattle.io/v1/namespaces/{namespace}/plans/{name}`).
fn fault_endpoint(method: &Method, r: &Res, watch: bool) -> String {
    let info = r.kind.info();
    let mut path = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    if r.ns.is_some() {
        path.push_str("/namespaces/{namespace}");
    }
    path.push('/');
    path.push_str(info.plural);
    if r.name.is_some() {
        path.push_str("/{name}");
    }
    if let Some(sub) = &r.sub {
        path.push('/');
        path.push_str(sub);
    }
    let verb = if watch { "WATCH" } else { method.as_str() };
    format!("kube {verb} {path}")
}

/// The kinds a Kubernetes API request can be struck with. A watch is struck only before
/// its stream starts (a refusal or a dropped connection): a stream cut short later is a
/// normal event every watcher resumes from, and a body of garbage or a stall on a stream
/// has no fixed end to damage. An eviction takes no injected 429: its 429 means a
/// PodDisruptionBudget refused it, which the drain tests cover as itself.
fn fault_kinds(watch: bool, eviction: bool) -> &'static [Fault] {
    if watch {
        &[
            Fault::Throttle,
            Fault::Error500,
            Fault::Error503,
            Fault::Reset,
        ]
    } else if eviction {
        &[
            Fault::Error500,
            Fault::Error503,
            Fault::Reset,
            Fault::Truncate,
            Fault::Garbage,
            Fault::Stall,
        ]
    } else {
        &Fault::ALL
    }
}

/// The apiserver's own answer for a refusing fault: the `Status` it sends under API
/// priority and fairness (429, whose details carry `retryAfterSeconds` with the
/// `Retry-After` header), for an internal error (500) and when it cannot serve (503).
fn refusal(fault: Fault, retry_after: Option<u32>) -> Option<ApiErr> {
    match fault {
        Fault::Throttle => {
            let mut e = ApiErr::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            if let Some(secs) = retry_after {
                e.details = json!({ "retryAfterSeconds": secs });
            }
            Some(e)
        }
        Fault::Error500 => {
            let mut e = ApiErr::new(
                500,
                "InternalError",
                "Internal error occurred: etcdserver: request timed out",
            );
            e.details = json!({ "causes": [ { "message": "etcdserver: request timed out" } ] });
            Some(e)
        }
        Fault::Error503 => Some(ApiErr::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )),
        _ => None,
    }
}

fn bad_request(msg: impl Into<String>) -> ApiErr {
    ApiErr::new(400, "BadRequest", msg)
}

type Out = Result<(u16, Value), ApiErr>;

/// What a write request carries besides its route and query.
struct Req<'a> {
    ctype: &'a str,
    body: &'a [u8],
    /// The field manager writes are recorded under (see [`field_manager`]).
    manager: &'a str,
    wants_table: bool,
}

/// The apiserver's `managerOrUserAgent`: the `fieldManager` parameter, else the User-Agent up
/// to its first `/` (printable characters only, at most 128 bytes).
fn field_manager(param: Option<&str>, user_agent: &str) -> String {
    if let Some(m) = param.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let mut out = String::new();
    for c in user_agent.split('/').next().unwrap_or("").chars() {
        if c.is_control() {
            continue;
        }
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

fn dispatch(
    kc: &mut KCluster,
    method: &Method,
    r: &Res,
    params: &Params,
    req: &Req,
    now: f64,
) -> Out {
    let Req {
        ctype,
        body,
        manager,
        wants_table,
    } = *req;
    let info = r.kind.info();
    if info.namespaced && r.ns.is_none() && r.name.is_some() {
        return Err(not_found_err());
    }
    let ns = r.ns.clone().unwrap_or_default();
    let sub = r.sub.as_deref();
    if let Some(s) = sub {
        let ok = s == "status" || (s == "eviction" && r.kind == Kind::Pod);
        if !ok {
            return Err(not_found_err());
        }
    }
    let parse_body = || -> Result<Value, ApiErr> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|e| bad_request(format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({e})")))
    };
    match (method.clone(), &r.name) {
        (Method::GET, None) => list(kc, r.kind, r.ns.as_deref(), params, wants_table, now),
        (Method::GET, Some(name)) => {
            let o = kc
                .get(r.kind, &ns, name)
                .cloned()
                .ok_or_else(|| ApiErr::not_found(r.kind, name))?;
            if wants_table {
                let meta = json!({ "resourceVersion": o["metadata"]["resourceVersion"] });
                Ok((
                    200,
                    table(
                        r.kind,
                        &[o],
                        params.get("includeObject").unwrap_or("Metadata"),
                        now,
                        meta,
                    ),
                ))
            } else {
                Ok((200, o))
            }
        }
        (Method::POST, Some(name)) if sub == Some("eviction") => {
            let b = parse_body()?;
            if let Some(n) = b["metadata"]["name"].as_str() {
                if n != name {
                    return Err(bad_request(
                        "name in URL does not match name in Eviction object",
                    ));
                }
            }
            let av = b["apiVersion"].as_str().unwrap_or("policy/v1");
            if !matches!(av, "policy/v1" | "policy/v1beta1")
                || b["kind"].as_str().is_some_and(|k| k != "Eviction")
            {
                return Err(bad_request(format!("unsupported Eviction object {av}")));
            }
            let grace = b["deleteOptions"]["gracePeriodSeconds"].as_i64();
            if let Some(uid) = b["deleteOptions"]["preconditions"]["uid"].as_str() {
                if kc
                    .get(Kind::Pod, &ns, name)
                    .is_some_and(|p| util::uid(p) != uid)
                {
                    return Err(conflict_uid(name, uid));
                }
            }
            if b["deleteOptions"]["dryRun"].is_array() || params.get("dryRun").is_some() {
                kc.get(Kind::Pod, &ns, name)
                    .ok_or_else(|| ApiErr::not_found(Kind::Pod, name))?;
                return Ok((
                    201,
                    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
                ));
            }
            ctrl::evict(kc, &ns, name, grace, now)?;
            Ok((
                201,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
            ))
        }
        (Method::POST, None) => {
            let mut b = parse_body()?;
            if b.is_object() && b["metadata"].is_object() {
                record_manager(&mut b, manager, "Update", r.kind, None, now);
            }
            create(kc, r.kind, &ns, b, now)
        }
        (Method::PUT, Some(name)) => {
            let b = parse_body()?;
            let cur = kc
                .get(r.kind, &ns, name)
                .cloned()
                .ok_or_else(|| ApiErr::not_found(r.kind, name))?;
            if b["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return Err(bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            if let Some(rv) = b["metadata"]["resourceVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                if Some(rv) != cur["metadata"]["resourceVersion"].as_str() {
                    return Err(ApiErr::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        ctrl::resource_name(r.kind))));
                }
            }
            let mut new = if sub == Some("status") {
                let mut n = cur.clone();
                n["status"] = b["status"].clone();
                n
            } else {
                let mut n = b;
                if !cur["status"].is_null() {
                    n["status"] = cur["status"].clone();
                }
                n
            };
            new["metadata"]["name"] = json!(name);
            store_update(kc, r.kind, &cur, new, Some((manager, sub)), now)
        }
        (Method::PATCH, Some(name))
            if ctype.split(';').next().unwrap_or("").trim() == "application/apply-patch+yaml" =>
        {
            let b = parse_body()?;
            apply(kc, r.kind, &ns, name, sub, b, params, now)
        }
        (Method::PATCH, Some(name)) => {
            let b = parse_body()?;
            let cur = kc
                .get(r.kind, &ns, name)
                .cloned()
                .ok_or_else(|| ApiErr::not_found(r.kind, name))?;
            let mut new = cur.clone();
            let ct = ctype.split(';').next().unwrap_or("").trim();
            match ct {
                "application/merge-patch+json" => merge_patch(&mut new, &b),
                "application/strategic-merge-patch+json" => strategic_merge_patch(&mut new, &b).map_err(bad_request)?,
                "application/json-patch+json" => json_patch(&mut new, &b).map_err(|e| ApiErr::new(422, "Invalid", e))?,
                other => {
                    return Err(ApiErr::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})")))
                }
            }
            if new["metadata"]["name"] != cur["metadata"]["name"] {
                return Err(ApiErr::new(
                    422,
                    "Invalid",
                    "metadata.name: Invalid value: field is immutable",
                ));
            }
            store_update(kc, r.kind, &cur, new, Some((manager, sub)), now)
        }
        (Method::DELETE, Some(name)) => {
            let b = parse_body()?;
            let grace = params
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
                .or_else(|| b["gracePeriodSeconds"].as_i64());
            let cur = kc
                .get(r.kind, &ns, name)
                .cloned()
                .ok_or_else(|| ApiErr::not_found(r.kind, name))?;
            if let Some(uid) = b["preconditions"]["uid"].as_str() {
                if util::uid(&cur) != uid {
                    return Err(conflict_uid(name, uid));
                }
            }
            if params.get("dryRun").is_some() || b["dryRun"].is_array() {
                return Ok((200, cur));
            }
            delete(kc, r.kind, &ns, name, grace, now)
        }
        _ => Err(ApiErr::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )),
    }
}

/// Server-side apply, simplified: create the object if missing, else merge the applied
/// configuration into it (JSON merge-patch semantics; fields the manager stopped applying are
/// not removed), recording `metadata.managedFields` for the field manager. The body must be
/// JSON (which is valid YAML: kubectl and client libraries send JSON).
#[allow(clippy::too_many_arguments)]
fn apply(
    kc: &mut KCluster,
    kind: Kind,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    mut b: Value,
    params: &Params,
    now: f64,
) -> Out {
    let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiErr::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    let manager = manager.to_string();
    if !b.is_object() {
        return Err(bad_request("the applied configuration must be an object"));
    }
    if b["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if b["apiVersion"]
        .as_str()
        .is_some_and(|v| v != kind.api_version())
        || b["kind"].as_str().is_some_and(|k| k != kind.info().kind)
    {
        return Err(bad_request(format!(
            "the applied configuration must be {} {}",
            kind.api_version(),
            kind.info().kind
        )));
    }
    let entry = |op: &str| {
        json!({ "manager": manager, "operation": op, "apiVersion": kind.api_version(),
            "time": util::k8s_time(now), "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": {} } })
    };
    if let Some(m) = b["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let Some(cur) = kc.get(kind, ns, name).cloned() else {
        if sub.is_some() {
            return Err(ApiErr::not_found(kind, name));
        }
        b["metadata"]["name"] = json!(name);
        let mut e = entry("Apply");
        if sub == Some("status") {
            e["subresource"] = json!("status");
        }
        b["metadata"]["managedFields"] = json!([e]);
        return create(kc, kind, ns, b, now);
    };
    let mut new = cur.clone();
    if sub == Some("status") {
        merge_patch(&mut new["status"], &b["status"]);
    } else {
        if let Some(m) = b.as_object_mut() {
            m.remove("status");
        }
        merge_patch(&mut new, &b);
    }
    let mut mf: Vec<Value> = cur["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    mf.retain(|e| !(e["manager"] == json!(manager) && e["operation"] == "Apply"));
    let mut e = entry("Apply");
    if sub == Some("status") {
        e["subresource"] = json!("status");
    }
    mf.push(e);
    new["metadata"]["managedFields"] = json!(mf);
    store_update(kc, kind, &cur, new, None, now)
}

/// The apiserver's readiness checks (`/readyz?verbose` of a 1.29+ kube-apiserver), in order.
pub const READYZ_CHECKS: &[&str] = &[
    "ping",
    "log",
    "etcd",
    "etcd-readiness",
    "informer-sync",
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/priority-and-fairness-config-consumer",
    "poststarthook/priority-and-fairness-filter",
    "poststarthook/storage-object-count-tracker-hook",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/start-system-namespaces-controller",
    "poststarthook/bootstrap-controller",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/priority-and-fairness-config-producer",
    "poststarthook/start-cluster-authentication-info-controller",
    "poststarthook/start-kube-apiserver-identity-lease-controller",
    "poststarthook/aggregator-reload-proxy-client-cert",
    "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-registration-controller",
    "poststarthook/apiservice-status-available-controller",
    "poststarthook/kube-apiserver-autoregistration",
    "autoregister-completion",
    "poststarthook/apiservice-openapi-controller",
    "shutdown",
];

/// `/healthz`, `/livez`, `/readyz` (and `/readyz/CHECK`) as the apiserver's healthz handlers
/// answer them: `ok`, or with `?verbose` one `[+]NAME ok` line per check and `NAME check
/// passed`; a failing check makes the whole endpoint 500 with the verbose body, the failed
/// check as `[-]NAME failed: reason withheld` and a last line `NAME check failed`. Only readyz
/// checks can be made to fail (`readyz_failing`); livez and healthz stay healthy. None for
/// any other path.
fn health(path: &str, params: &Params, failing: &[String]) -> Option<Response> {
    let segs: Vec<&str> = path.trim_matches('/').splitn(2, '/').collect();
    let endpoint = segs[0];
    if !matches!(endpoint, "healthz" | "livez" | "readyz") {
        return None;
    }
    // livez/healthz do not run the readiness-only checks.
    let checks: Vec<&str> = READYZ_CHECKS
        .iter()
        .copied()
        .filter(|c| {
            endpoint == "readyz" || !matches!(*c, "etcd-readiness" | "informer-sync" | "shutdown")
        })
        .collect();
    let fails = |c: &str| endpoint == "readyz" && failing.iter().any(|f| f == c);
    let text = |code: StatusCode, body: String| {
        let mut r = (code, body).into_response();
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut().insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        r
    };
    if let Some(check) = segs.get(1) {
        if !checks.contains(check) {
            return Some(not_found_route());
        }
        return Some(if fails(check) {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {check} check failed\n"),
            )
        } else {
            text(StatusCode::OK, "ok".into())
        });
    }
    let excluded: Vec<&str> = params
        .0
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut out = String::new();
    let mut failed = false;
    for c in &checks {
        if excluded.contains(c) {
            out.push_str(&format!("[+]{c} excluded: ok\n"));
        } else if fails(c) {
            failed = true;
            out.push_str(&format!("[-]{c} failed: reason withheld\n"));
        } else {
            out.push_str(&format!("[+]{c} ok\n"));
        }
    }
    Some(if failed {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{out}{endpoint} check failed\n"),
        )
    } else if params.0.iter().any(|(k, _)| k == "verbose") {
        text(StatusCode::OK, format!("{out}{endpoint} check passed\n"))
    } else {
        text(StatusCode::OK, "ok".into())
    })
}

fn channel_redirect(s: &KubeSrv, channel: &str) -> Response {
    let inner = s.app.lock();
    let version = inner
        .world
        .k3s
        .get(&s.cluster)
        .and_then(|k| k.channels.get(channel.trim_end_matches('/')).cloned());
    drop(inner);
    match version {
        Some(v) => {
            let loc = format!(
                "https://github.com/k3s-io/k3s/releases/tag/{}",
                v.replace('+', "%2B")
            );
            let mut r =
                (StatusCode::FOUND, format!("<a href=\"{loc}\">Found</a>.\n")).into_response();
            if let Ok(h) = HeaderValue::from_str(&loc) {
                r.headers_mut().insert("location", h);
            }
            r
        }
        None => (StatusCode::NOT_FOUND, "channel not found\n").into_response(),
    }
}

fn not_found_err() -> ApiErr {
    let mut e = ApiErr::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    e.details = json!({});
    e
}

fn conflict_uid(name: &str, uid: &str) -> ApiErr {
    ApiErr::new(409, "Conflict", format!(
        "Operation cannot be fulfilled on Pod \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: "
    ))
}

fn create(kc: &mut KCluster, kind: Kind, ns: &str, mut b: Value, now: f64) -> Out {
    if !b.is_object() || !b["metadata"].is_object() {
        return Err(ApiErr::new(422, "Invalid", "metadata: Required value"));
    }
    if kind.info().namespaced {
        match b["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(bad_request("the namespace of the provided object does not match the namespace sent on the request"))
            }
            _ => b["metadata"]["namespace"] = json!(ns),
        }
        if kc.get(Kind::Namespace, "", ns).is_none() {
            return Err(ApiErr::not_found(Kind::Namespace, ns));
        }
    }
    if b["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        let Some(g) = b["metadata"]["generateName"].as_str().map(str::to_string) else {
            return Err(ApiErr::new(
                422,
                "Invalid",
                "name or generateName is required",
            ));
        };
        b["metadata"]["name"] = json!(format!("{g}{}", util::random_suffix(&mut kc.rng, 5)));
    }
    let name = util::name(&b).to_string();
    if kc.get(kind, ns, &name).is_some() {
        let mut e = ApiErr::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", ctrl::resource_name(kind)),
        );
        e.details = json!({ "name": name, "kind": kind.info().plural });
        return Err(e);
    }
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        if let Some(m) = b["metadata"].as_object_mut() {
            m.remove(f);
        }
    }
    admit(kind, &mut b)?;
    let o = kc.create(kind, b, now);
    Ok((201, o))
}

/// Defaulting and validation of a new object, as the apiserver's registry strategies do them
/// for the kinds served. Shared by POST and world-file staging.
pub(crate) fn admit(kind: Kind, b: &mut Value) -> Result<(), ApiErr> {
    let name = util::name(b).to_string();
    let invalid = |field: &str, what: &str| {
        ApiErr::new(
            422,
            "Invalid",
            format!(
                "{}.{} \"{name}\" is invalid: {field}: {what}",
                kind.info().kind,
                kind.info().group
            ),
        )
    };
    match kind {
        Kind::Pod => {
            if !b["spec"]["containers"].is_array() {
                return Err(ApiErr::new(
                    422,
                    "Invalid",
                    format!("Pod \"{name}\" is invalid: spec.containers: Required value"),
                ));
            }
            ctrl::pod_defaults(&mut b["spec"]);
            b["status"] = json!({ "phase": "Pending", "qosClass": "Burstable" });
        }
        Kind::Namespace => {
            b["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            b["spec"] = json!({ "finalizers": ["kubernetes"] });
            b["status"] = json!({ "phase": "Active" });
        }
        Kind::Node | Kind::Event | Kind::ServiceAccount | Kind::Crd | Kind::ConfigMap => {}
        Kind::Secret => secret_defaults(b)?,
        Kind::Ingress => {
            if b["spec"]["rules"].is_null() && b["spec"]["defaultBackend"].is_null() {
                return Err(invalid(
                    "spec",
                    "Invalid value: \"\": either `defaultBackend` or `rules` must be specified",
                ));
            }
            if b["status"].is_null() {
                b["status"] = json!({ "loadBalancer": {} });
            }
        }
        Kind::CronJob => {
            if b["spec"]["schedule"].as_str().is_none_or(str::is_empty) {
                return Err(invalid("spec.schedule", "Required value"));
            }
            if !b["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"].is_array() {
                return Err(invalid(
                    "spec.jobTemplate.spec.template.spec.containers",
                    "Required value",
                ));
            }
            let spec = b["spec"].as_object_mut().expect("checked");
            spec.entry("concurrencyPolicy").or_insert(json!("Allow"));
            spec.entry("suspend").or_insert(json!(false));
            spec.entry("successfulJobsHistoryLimit").or_insert(json!(3));
            spec.entry("failedJobsHistoryLimit").or_insert(json!(1));
            if b["status"].is_null() {
                b["status"] = json!({});
            }
        }
        Kind::FlowSchema => {
            if b["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    "spec.priorityLevelConfiguration.name",
                    "Required value",
                ));
            }
            if b["status"].is_null() {
                b["status"] = json!({});
            }
        }
        Kind::Hpa => {
            let target = &b["spec"]["scaleTargetRef"];
            if target["kind"].as_str().is_none_or(str::is_empty) {
                return Err(invalid("spec.scaleTargetRef.kind", "Required value"));
            }
            if target["name"].as_str().is_none_or(str::is_empty) {
                return Err(invalid("spec.scaleTargetRef.name", "Required value"));
            }
            let max = b["spec"]["maxReplicas"].as_i64().unwrap_or(0);
            if max < 1 {
                return Err(invalid(
                    "spec.maxReplicas",
                    &format!("Invalid value: {max}: must be greater than or equal to 1"),
                ));
            }
            let spec = b["spec"].as_object_mut().expect("checked");
            spec.entry("minReplicas").or_insert(json!(1));
            if b["status"].is_null() {
                b["status"] = json!({ "currentReplicas": 0, "desiredReplicas": 0 });
            }
        }
        Kind::Job => {
            if b["status"].is_null() {
                b["status"] = json!({});
            }
        }
        Kind::Plan => {
            if !b["spec"].is_object() || b["spec"]["upgrade"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "Invalid",
                    format!("Plan.upgrade.cattle.io \"{name}\" is invalid: spec.upgrade: Required value"),
                ));
            }
            b["status"] = json!({});
        }
        Kind::Pdb | Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet => {
            if b["spec"]["selector"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: spec.selector: Required value",
                        kind.info().kind
                    ),
                ));
            }
            if matches!(
                kind,
                Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
            ) && b["spec"]["replicas"].is_null()
            {
                b["spec"]["replicas"] = json!(1);
            }
            b["status"] = json!({});
        }
    }
    Ok(())
}

/// core/v1 Secret on write: `stringData` is merged into `data` (base64) and dropped, `data`
/// must be base64, `type` defaults to `Opaque`.
fn secret_defaults(b: &mut Value) -> Result<(), ApiErr> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let undecodable = |e: String| {
        ApiErr::new(
            400,
            "BadRequest",
            format!("Secret in version \"v1\" cannot be handled as a Secret: {e}"),
        )
    };
    let obj = b.as_object_mut().expect("object");
    if let Some(sd) = obj.remove("stringData") {
        let Some(sd) = sd.as_object().cloned() else {
            return Err(undecodable(
                "stringData must be an object of strings".into(),
            ));
        };
        let data = obj.entry("data").or_insert(json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in sd {
            let Some(v) = v.as_str() else {
                return Err(undecodable(format!("stringData[{k:?}] must be a string")));
            };
            data[k] = json!(b64.encode(v));
        }
    }
    match obj.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(undecodable(format!("data[{k:?}] must be a base64 string")));
                };
                b64.decode(v)
                    .map_err(|e| undecodable(format!("data[{k:?}]: illegal base64 data ({e})")))?;
            }
        }
        Some(_) => return Err(undecodable("data must be an object".into())),
    }
    obj.entry("type").or_insert(json!("Opaque"));
    Ok(())
}

/// Record a write in `metadata.managedFields` as the apiserver's field manager does: one
/// entry per (manager, operation, subresource), replaced on every write.
fn record_manager(
    o: &mut Value,
    manager: &str,
    operation: &str,
    kind: Kind,
    sub: Option<&str>,
    now: f64,
) {
    let mut mf: Vec<Value> = o["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    mf.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e["subresource"].as_str() == sub)
    });
    let mut e = json!({ "manager": manager, "operation": operation, "apiVersion": kind.api_version(),
        "time": util::k8s_time(now), "fieldsType": "FieldsV1", "fieldsV1": {} });
    if let Some(s) = sub {
        e["subresource"] = json!(s);
    }
    mf.push(e);
    o["metadata"]["managedFields"] = json!(mf);
}

/// Store `new` in place of `cur`. `writer` = (field manager, subresource) of a client write
/// to record in managedFields (None for server-side apply, which records its own).
fn store_update(
    kc: &mut KCluster,
    kind: Kind,
    cur: &Value,
    mut new: Value,
    writer: Option<(&str, Option<&str>)>,
    now: f64,
) -> Out {
    // Immutable metadata.
    for f in [
        "uid",
        "creationTimestamp",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        if cur["metadata"][f].is_null() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove(f);
            }
        } else {
            new["metadata"][f] = cur["metadata"][f].clone();
        }
    }
    new["apiVersion"] = json!(kind.api_version());
    new["kind"] = json!(kind.info().kind);
    new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
    if cur["spec"] != new["spec"] && !cur["metadata"]["generation"].is_null() {
        new["metadata"]["generation"] =
            json!(cur["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }
    if kind == Kind::Secret {
        secret_defaults(&mut new)?;
    }
    // An update that leaves managedFields out keeps the stored ones (an empty list resets
    // them), as the apiserver does.
    if new["metadata"]["managedFields"].is_null() && !cur["metadata"]["managedFields"].is_null() {
        new["metadata"]["managedFields"] = cur["metadata"]["managedFields"].clone();
    }
    if let Some((manager, sub)) = writer {
        let strip = |o: &Value| {
            let mut o = o.clone();
            if let Some(m) = o["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            o
        };
        // No-op writes change nothing, not even the manager's timestamp.
        if strip(cur) != strip(&new) {
            record_manager(&mut new, manager, "Update", kind, sub, now);
        }
    }
    if kind == Kind::Node {
        let was = cur["spec"]["unschedulable"] == true;
        let is = new["spec"]["unschedulable"] == true;
        if was != is {
            let name = util::name(cur).to_string();
            let (reason, msg) = if is {
                (
                    "NodeNotSchedulable",
                    format!("Node {name} status is now: NodeNotSchedulable"),
                )
            } else {
                (
                    "NodeSchedulable",
                    format!("Node {name} status is now: NodeSchedulable"),
                )
            };
            kc.event(&new, "Normal", reason, &msg, "kubelet", now);
        }
    }
    kc.put(kind, new.clone());
    kc.dirty = true;
    let o = kc
        .get(kind, util::namespace(&new), util::name(&new))
        .cloned()
        .unwrap_or(new);
    Ok((200, o))
}

fn success_status(kind: Kind, o: &Value) -> Value {
    let mut d = json!({ "name": util::name(o), "kind": kind.info().plural, "uid": util::uid(o) });
    if !kind.info().group.is_empty() {
        d["group"] = json!(kind.info().group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d })
}

fn delete(
    kc: &mut KCluster,
    kind: Kind,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    now: f64,
) -> Out {
    match kind {
        Kind::Pod => {
            let before = kc.get(Kind::Pod, ns, name).cloned().expect("checked");
            match ctrl::delete_pod(kc, ns, name, grace, now, false) {
                Some(p) if kc.get(Kind::Pod, ns, name).is_some() => Ok((200, p)),
                _ => Ok((200, success_status(Kind::Pod, &before))),
            }
        }
        Kind::Node => {
            let o = kc.get(Kind::Node, "", name).cloned().expect("checked");
            ctrl::remove_node(kc, name, now);
            Ok((200, success_status(Kind::Node, &o)))
        }
        Kind::Namespace => {
            if matches!(
                name,
                "default" | "kube-system" | "kube-public" | "kube-node-lease"
            ) {
                return Err(ApiErr::new(
                    403,
                    "Forbidden",
                    format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    ),
                ));
            }
            for k in KINDS {
                if !k.info().namespaced {
                    continue;
                }
                let keys: Vec<String> = kc
                    .objs(k)
                    .range((name.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == name)
                    .map(|((_, n), _)| n.clone())
                    .collect();
                for n in keys {
                    if k == Kind::Pod {
                        ctrl::delete_pod(kc, name, &n, Some(0), now, false);
                    } else {
                        kc.remove(k, name, &n);
                    }
                }
            }
            let o = kc.remove(Kind::Namespace, "", name).expect("checked");
            Ok((200, o))
        }
        _ => {
            let o = kc.remove(kind, ns, name).expect("checked");
            cascade(kc, ns, util::uid(&o), now);
            kc.dirty = true;
            Ok((200, success_status(kind, &o)))
        }
    }
}

/// Background cascading deletion of everything a deleted object controlled.
fn cascade(kc: &mut KCluster, ns: &str, uid: &str, now: f64) {
    for k in [Kind::ReplicaSet, Kind::Pod] {
        let owned: Vec<(String, String)> = kc
            .objs(k)
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .filter(|(_, o)| util::controller_of(o).is_some_and(|(_, _, u)| u == uid))
            .map(|(_, o)| (util::name(o).to_string(), util::uid(o).to_string()))
            .collect();
        for (n, u) in owned {
            if k == Kind::Pod {
                ctrl::delete_pod(kc, ns, &n, None, now, false);
            } else {
                kc.remove(k, ns, &n);
                cascade(kc, ns, &u, now);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// List
// ---------------------------------------------------------------------------------------------

fn selectors(kind: Kind, params: &Params) -> Result<(LabelSelector, FieldSelector), ApiErr> {
    let l = LabelSelector::parse(params.get("labelSelector").unwrap_or("")).map_err(bad_request)?;
    let f = FieldSelector::parse(params.get("fieldSelector").unwrap_or(""), kind.info().kind)
        .map_err(bad_request)?;
    Ok((l, f))
}

fn matches(o: &Value, ns: Option<&str>, l: &LabelSelector, f: &FieldSelector) -> bool {
    ns.is_none_or(|n| util::namespace(o) == n)
        && l.matches(&o["metadata"]["labels"])
        && f.matches(o)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn strip_type(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn list(
    kc: &KCluster,
    kind: Kind,
    ns: Option<&str>,
    params: &Params,
    wants_table: bool,
    now: f64,
) -> Out {
    let (l, f) = selectors(kind, params)?;
    let limit: usize = params
        .get("limit")
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(usize::MAX);
    let after: Option<(String, String)> = match params.get("continue").filter(|s| !s.is_empty()) {
        None => None,
        Some(tok) => {
            let s = unhex(tok).ok_or_else(|| bad_request("continue key is not valid"))?;
            let (a, b) = s
                .split_once('\0')
                .ok_or_else(|| bad_request("continue key is not valid"))?;
            Some((a.to_string(), b.to_string()))
        }
    };
    let objs = kc.objs(kind);
    let iter: Box<dyn Iterator<Item = (&(String, String), &Value)>> = match (&after, ns) {
        (Some(a), _) => Box::new(objs.range(a.clone()..).filter(move |(k, _)| *k != a)),
        (None, Some(n)) => Box::new(objs.range((n.to_string(), String::new())..)),
        (None, None) => Box::new(objs.iter()),
    };
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = 0usize;
    for (k, o) in iter {
        if let Some(n) = ns {
            if k.0 != n {
                break;
            }
        }
        if !matches(o, ns, &l, &f) {
            continue;
        }
        if items.len() >= limit {
            more += 1;
            continue;
        }
        last_key = Some(k.clone());
        items.push(o.clone());
    }
    let mut meta = json!({ "resourceVersion": kc.rv.to_string() });
    if more > 0 {
        if let Some((a, b)) = last_key {
            meta["continue"] = json!(hex(&format!("{a}\0{b}")));
            meta["remainingItemCount"] = json!(more);
        }
    }
    if wants_table {
        return Ok((
            200,
            table(
                kind,
                &items,
                params.get("includeObject").unwrap_or("Metadata"),
                now,
                meta,
            ),
        ));
    }
    let items: Vec<Value> = items.into_iter().map(strip_type).collect();
    Ok((
        200,
        json!({ "kind": format!("{}List", kind.info().kind), "apiVersion": kind.api_version(), "metadata": meta, "items": items }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

struct WatchFilter {
    kind: Kind,
    ns: Option<String>,
    l: LabelSelector,
    f: FieldSelector,
    table: bool,
}

impl WatchFilter {
    fn m(&self, o: &Value) -> bool {
        matches(o, self.ns.as_deref(), &self.l, &self.f)
    }

    /// The event to send for `ev`, with selector transitions as the watch cache applies them.
    fn event(&self, ev: &WEvent) -> Option<(&'static str, Value)> {
        if ev.kind != self.kind {
            return None;
        }
        let now_m = self.m(&ev.obj);
        let t = match ev.etype {
            "MODIFIED" => {
                let was = ev.prev.as_ref().is_some_and(|p| self.m(p));
                match (was, now_m) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            other if now_m => other,
            _ => return None,
        };
        Some((t, ev.obj.clone()))
    }

    fn line(&self, etype: &str, obj: Value, now: f64) -> Bytes {
        let obj = if self.table && etype != "BOOKMARK" && etype != "ERROR" {
            let meta = json!({ "resourceVersion": obj["metadata"]["resourceVersion"] });
            table(self.kind, &[obj], "Metadata", now, meta)
        } else {
            obj
        };
        let mut s =
            serde_json::to_vec(&json!({ "type": etype, "object": obj })).unwrap_or_default();
        s.push(b'\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let obj = json!({ "kind": self.kind.info().kind, "apiVersion": self.kind.api_version(), "metadata": meta });
        self.line("BOOKMARK", obj, 0.0)
    }
}

fn expired_line(rv: &str) -> Bytes {
    let st = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv}"), "reason": "Expired", "code": 410 });
    let mut s = serde_json::to_vec(&json!({ "type": "ERROR", "object": st })).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

async fn watch_resp(s: KubeSrv, r: Res, params: Params, wants_table: bool) -> Response {
    let (l, f) = match selectors(r.kind, &params) {
        Ok(x) => x,
        Err(e) => return err_resp(e),
    };
    let filter = WatchFilter {
        kind: r.kind,
        ns: r.ns.clone(),
        l,
        f,
        table: wants_table,
    };
    let allow_bookmarks = params.flag("allowWatchBookmarks");
    let send_initial = params.flag("sendInitialEvents");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let rv_param = params.get("resourceVersion").unwrap_or("").to_string();
    let now = now_secs();
    let (initial, sub, start_rv, expired) = {
        let mut inner = s.app.lock();
        let changed = inner.advance(now);
        if changed {
            s.app.save_logged(&inner, now);
        }
        let Some(kc) = inner.kube.clusters.get(&s.cluster) else {
            return not_found_route();
        };
        let sub = kc.tx.subscribe();
        let mut lines = Vec::new();
        let mut expired = false;
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            for o in kc.objs(r.kind).values() {
                if filter.m(o) {
                    lines.push(filter.line("ADDED", o.clone(), now));
                }
            }
            if send_initial {
                lines.push(filter.bookmark(kc.rv, true));
            }
        } else {
            match rv_param
                .parse::<u64>()
                .ok()
                .and_then(|rv| kc.history_since(rv))
            {
                Some(evs) => {
                    for ev in evs {
                        if let Some((t, o)) = filter.event(&ev) {
                            lines.push(filter.line(t, o, now));
                        }
                    }
                }
                None => expired = true,
            }
        }
        (lines, sub, kc.rv, expired)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(512);
    let mut shutdown = s.shutdown.clone();
    tokio::spawn(async move {
        if expired {
            let _ = tx.send(expired_line(&rv_param)).await;
            return;
        }
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let mut sub = sub;
        let mut seen = start_rv;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut bm = tokio::time::interval(Duration::from_secs(2));
        bm.tick().await;
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= seen {
                            continue;
                        }
                        seen = ev.rv;
                        if let Some((t, o)) = filter.event(&ev) {
                            if tx.send(filter.line(t, o, now_secs())).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow: end the watch; the client resumes from its last version.
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bm.tick(), if allow_bookmarks => {
                    if tx.send(filter.bookmark(seen, false)).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_endpoints_are_route_templates() {
        let key = |m: Method, path: &str, watch: bool| match parse_route(path) {
            Some(Route::Res(r)) => fault_endpoint(&m, &r, watch),
            _ => panic!("{path} is not a resource route"),
        };
        assert_eq!(
            key(
                Method::PATCH,
                "/apis/upgrade.cattle.io/v1/namespaces/system-upgrade/plans/server-plan",
                false
            ),
            "kube PATCH /apis/upgrade.cattle.io/v1/namespaces/{namespace}/plans/{name}"
        );
        assert_eq!(
            key(Method::GET, "/api/v1/nodes", true),
            "kube WATCH /api/v1/nodes"
        );
        assert_eq!(
            key(
                Method::POST,
                "/api/v1/namespaces/default/pods/web-1/eviction",
                false
            ),
            "kube POST /api/v1/namespaces/{namespace}/pods/{name}/eviction"
        );
        assert_eq!(
            key(Method::GET, "/api/v1/pods", false),
            "kube GET /api/v1/pods"
        );
        assert!(!fault_kinds(false, true).contains(&Fault::Throttle));
        assert!(!fault_kinds(true, false).contains(&Fault::Truncate));
        assert_eq!(fault_kinds(false, false), &Fault::ALL);
    }

    #[test]
    fn field_manager_follows_the_apiserver() {
        assert_eq!(field_manager(Some("kup"), "kubectl/v1.30.0"), "kup");
        assert_eq!(
            field_manager(None, "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505"),
            "kubectl"
        );
        assert_eq!(field_manager(Some(""), "helm/v3.15"), "helm");
        assert_eq!(field_manager(None, "no-slash\u{7}"), "no-slash");
        assert_eq!(field_manager(None, &"x".repeat(300)).len(), 128);
    }

    #[test]
    fn health_bodies() {
        let p = Params(vec![]);
        let v = Params(vec![("verbose".into(), String::new())]);
        let failing = vec!["etcd".to_string()];
        assert!(health("/api", &p, &failing).is_none());
        assert_eq!(health("/livez", &p, &failing).unwrap().status(), 200);
        assert_eq!(health("/readyz", &p, &[]).unwrap().status(), 200);
        assert_eq!(health("/readyz", &v, &failing).unwrap().status(), 500);
        assert_eq!(health("/readyz/etcd", &p, &failing).unwrap().status(), 500);
        assert_eq!(health("/readyz/nope", &p, &failing).unwrap().status(), 404);
        let ex = Params(vec![("exclude".into(), "etcd".into())]);
        assert_eq!(health("/readyz", &ex, &failing).unwrap().status(), 200);
    }

    #[test]
    fn admit_defaults_and_validates_new_kinds() {
        let mut s = json!({ "metadata": { "name": "s" }, "stringData": { "a": "b" } });
        admit(Kind::Secret, &mut s).unwrap();
        assert_eq!(s["data"]["a"], "Yg==");
        assert_eq!(s["type"], "Opaque");
        let mut bad = json!({ "metadata": { "name": "s" }, "data": { "a": "*" } });
        assert_eq!(admit(Kind::Secret, &mut bad).unwrap_err().code, 400);
        let mut ing = json!({ "metadata": { "name": "i" }, "spec": {} });
        let e = admit(Kind::Ingress, &mut ing).unwrap_err();
        assert!(
            e.message
                .starts_with("Ingress.networking.k8s.io \"i\" is invalid"),
            "{}",
            e.message
        );
        let mut hpa = json!({ "metadata": { "name": "h" }, "spec": { "scaleTargetRef": { "kind": "Deployment", "name": "d" }, "maxReplicas": 0 } });
        assert_eq!(admit(Kind::Hpa, &mut hpa).unwrap_err().code, 422);
        hpa["spec"]["maxReplicas"] = json!(3);
        admit(Kind::Hpa, &mut hpa).unwrap();
        assert_eq!(hpa["spec"]["minReplicas"], 1);
    }
}
