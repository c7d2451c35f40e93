//! HTTP front: SigV4 presence check, fault injection, EKS dispatch and the `/_sim` admin API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::eks::{self, Ctx, Route};
use crate::error::EksError;
use crate::faults::{Fault, FaultSpec};
use crate::state::{now_secs, App, CallRecord, FaultState};
use crate::world;

pub async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path.starts_with("/_sim/kubeadm/") {
        return crate::kubeadm::admin(&app, &method, path.trim_end_matches('/'), uri.query());
    }
    if path == "/_sim" || path.starts_with("/_sim/") {
        return admin(&app, &method, path, body);
    }
    app.lock().requests.push(crate::state::now_secs());
    if path.starts_with("/v1/projects/") {
        return crate::gke::handle(&app, method, &uri, &headers, body).await;
    }
    if path.starts_with("/subscriptions/") || path.starts_with("/providers/") {
        return crate::aks::handle(&app, method, &uri, &headers, body).await;
    }
    eks_request(&app, method, uri.path(), uri.query(), &headers, body).await
}

/// The cloud API requests received: how many, and the most in any one-second window.
fn request_rates(times: &[f64]) -> Value {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut peak = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= 1.0 {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    json!({ "count": sorted.len(), "peak_per_second": peak })
}

fn json_response(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid"),
    );
    r
}

async fn eks_request(
    app: &Arc<App>,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    // 1. Signature presence (SigV4 is not verified, only required).
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            return EksError::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
            .into_response()
        }
        Some(a) if !a.starts_with("AWS4-HMAC-SHA256 ") => {
            return EksError::new(
                "InvalidSignatureException",
                "Authorization header requires the AWS4-HMAC-SHA256 (SigV4) scheme",
            )
            .into_response()
        }
        Some(_) => {}
    }
    // 2. Route.
    let Some(route) = Route::parse(&method, path) else {
        return EksError::new(
            "NotFoundException",
            format!("No EKS operation matches {method} {path}"),
        )
        .into_response();
    };
    let body_json: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return EksError::new(
                    "BadRequestException",
                    format!("The request body is not valid JSON: {e}"),
                )
                .into_response()
            }
        }
    };
    let query = eks::parse_query(query);
    // 3. Injected latency (outside the lock).
    let latency = app.lock().faults.spec.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // 4. Everything else happens under the lock, so requests are serialised.
    let now = now_secs();
    // The lock is held for the request, never across an await.
    let (result, fault, retry_after, stall_for) = {
        let mut inner = app.lock();
        let changed = inner.advance(now);
        let (cluster, nodegroup, addon) = route.resource(&body_json);
        let token = body_json
            .get("clientRequestToken")
            .and_then(Value::as_str)
            .map(str::to_string);
        let fault = inner.faults.roll(&format!("eks {method} {}", route.op()));
        let result = match fault {
            Some(Fault::Throttle) => {
                let mut e = EksError::new("ThrottlingException", "Rate exceeded");
                e.cluster = cluster.clone();
                Err(e)
            }
            Some(Fault::Error500) => Err(EksError::new(
                "ServerException",
                "An internal error occurred. Try again.",
            )),
            Some(Fault::Error503) => Err(EksError::new(
                "ServiceUnavailableException",
                "Service Unavailable. Please try again later.",
            )),
            _ => eks::execute(
                &route,
                &query,
                &body_json,
                Ctx {
                    inner: &mut inner,
                    now,
                    speed: app.speed,
                },
            ),
        };
        if route.is_mutating() {
            let rec = CallRecord {
                op: route.op().to_string(),
                cluster,
                nodegroup,
                addon,
                client_request_token: token,
                update_id: result.as_ref().ok().and_then(|d| d.update_id.clone()),
                replay: result.as_ref().is_ok_and(|d| d.replay),
                mutation: result.as_ref().is_ok_and(|d| d.mutated),
                error: result.as_ref().err().map(|e| e.kind.to_string()),
                at: eks::now_rfc3339(now),
                fault: fault.filter(|f| !f.refuses()).map(Fault::key),
            };
            inner.calls.push(rec);
        }
        let mutated = result.as_ref().is_ok_and(|d| d.mutated);
        if changed || mutated {
            app.save_logged(&inner, now);
        }
        let faults = &inner.faults;
        (result, fault, faults.spec.retry_after, faults.stall_for())
    };
    let resp = match result {
        Ok(done) => json_response(eks::OK, done.body),
        Err(e) => e.into_response(),
    };
    faulted(fault, resp, retry_after, stall_for).await
}

/// The answer `resp` as `fault` leaves it. A refused request (429, 500, 503) gets
/// `Retry-After` when the spec asks for it on 429s and 503s. A request that was carried
/// out loses its answer: `reset` never returns, unwinding the connection's task (without
/// the panic hook, so nothing is printed) so hyper drops the socket with no response, as
/// a load balancer or a crashed front end would; `truncate` sends half the body under the
/// full Content-Length and then fails the stream, so the connection closes mid-body;
/// `garbage` answers 200 with an HTML error page; `stall` holds the answer back.
pub(crate) async fn faulted(
    fault: Option<Fault>,
    mut resp: Response,
    retry_after: Option<u32>,
    stall_for: std::time::Duration,
) -> Response {
    match fault {
        None => resp,
        Some(Fault::Throttle | Fault::Error500 | Fault::Error503) => {
            let status = resp.status();
            if let Some(secs) = retry_after {
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE
                {
                    resp.headers_mut()
                        .insert("retry-after", HeaderValue::from(secs));
                }
            }
            resp
        }
        Some(Fault::Reset) => std::panic::resume_unwind(Box::new("kup-sim: injected reset")),
        Some(Fault::Truncate) => {
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            // An empty answer (a 202 with headers only) is promised a two-byte body.
            let promised = bytes.len().max(2);
            let sent = bytes.slice(..bytes.len() / 2);
            parts.headers.insert(
                axum::http::header::CONTENT_LENGTH,
                HeaderValue::from(promised),
            );
            use futures_util::StreamExt;
            // The pause lets hyper flush the head and the first half before the failing
            // chunk makes it drop the connection (else the client sees no answer at all).
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "kup-sim: injected truncation",
                ))
            });
            let chunks = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(sent)]).chain(cut);
            Response::from_parts(parts, axum::body::Body::from_stream(chunks))
        }
        Some(Fault::Garbage) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n",
        )
            .into_response(),
        Some(Fault::Stall) => {
            tokio::time::sleep(stall_for).await;
            resp
        }
    }
}

fn admin(app: &Arc<App>, method: &Method, path: &str, body: Bytes) -> Response {
    let err = |status: StatusCode, msg: String| json_response(status, json!({ "error": msg }));
    match (method.clone(), path.trim_end_matches('/')) {
        (Method::GET, "/_sim/health") => json_response(StatusCode::OK, json!({ "status": "ok" })),
        (Method::GET, "/_sim/requests") => {
            let inner = app.lock();
            json_response(StatusCode::OK, request_rates(&inner.requests))
        }
        (Method::GET, "/_sim/calls") => {
            let inner = app.lock();
            json_response(
                StatusCode::OK,
                serde_json::to_value(&inner.calls).unwrap_or(Value::Null),
            )
        }
        (Method::GET, "/_sim/world") => {
            let now = now_secs();
            let mut inner = app.lock();
            if inner.advance(now) {
                app.save_logged(&inner, now);
            }
            let f = world::to_file(&inner.world, now, app.speed);
            json_response(
                StatusCode::OK,
                serde_json::to_value(&f).unwrap_or(Value::Null),
            )
        }
        (Method::GET, "/_sim/faults") => {
            let inner = app.lock();
            let pending: Vec<String> = inner
                .faults
                .fails
                .iter()
                .map(|f| format!("{}:{}", f.target, f.code))
                .collect();
            let pending_kubeadm: Vec<String> = inner
                .faults
                .kubeadmfails
                .iter()
                .map(|f| format!("{}/{}", f.cluster, f.node))
                .collect();
            let kubedown: Vec<Value> = inner
                .faults
                .kubedown
                .iter()
                .map(|k| json!({ "cluster": k.cluster, "started": k.started, "seconds": k.duration.as_secs_f64(), "dropped": k.dropped }))
                .collect();
            json_response(
                StatusCode::OK,
                json!({
                    "spec": inner.faults.spec.to_string(),
                    "pending_fail": pending,
                    "pending_kubeadmfail": pending_kubeadm,
                    "injected": inner.faults.injected,
                    "endpoints": inner.faults.endpoints,
                    "kubedown": kubedown,
                }),
            )
        }
        (Method::POST, "/_sim/faults") => {
            let text = String::from_utf8_lossy(&body).to_string();
            // Accept a bare SPEC or a JSON string.
            let text = serde_json::from_str::<String>(&text).unwrap_or(text);
            match FaultSpec::parse(&text) {
                Ok(spec) => {
                    let shown = spec.to_string();
                    app.lock().faults = FaultState::new(spec);
                    json_response(StatusCode::OK, json!({ "spec": shown }))
                }
                Err(e) => err(StatusCode::BAD_REQUEST, e),
            }
        }
        (Method::GET, p) if p.starts_with("/_sim/kube/") && p.ends_with("/audit") => {
            let name = &p["/_sim/kube/".len()..p.len() - "/audit".len()];
            let now = now_secs();
            let mut inner = app.lock();
            if inner.advance(now) {
                app.save_logged(&inner, now);
            }
            match inner.kube.clusters.get(name) {
                Some(kc) => json_response(StatusCode::OK, crate::kube::audit_json(kc)),
                None => err(StatusCode::NOT_FOUND, format!("no cluster {name}")),
            }
        }
        (m, p) if p.starts_with("/_sim/kube/") && p.ends_with("/readyz") => {
            let name = &p["/_sim/kube/".len()..p.len() - "/readyz".len()];
            readyz_admin(app, &m, name, &body)
        }
        (Method::DELETE, "/_sim/faults") => {
            app.lock().faults = FaultState::new(FaultSpec::none());
            json_response(StatusCode::OK, json!({ "spec": "none" }))
        }
        _ => err(
            StatusCode::NOT_FOUND,
            format!(
                "no admin route {method} {path}; routes: GET /_sim/health, GET /_sim/calls, GET /_sim/world, GET|POST|DELETE /_sim/faults, GET /_sim/kube/CLUSTER/audit, GET|POST|DELETE /_sim/kube/CLUSTER/readyz, /_sim/kubeadm/CLUSTER/…"
            ),
        ),
    }
}

/// `GET|POST|DELETE /_sim/kube/{cluster}/readyz`: the readiness checks the cluster's API
/// server reports as failing. POST replaces them (body `["etcd"]` or `{"failing": ["etcd"]}`),
/// DELETE clears them; both are saved in the world file (`readyz_failing`).
fn readyz_admin(app: &Arc<App>, method: &Method, cluster: &str, body: &[u8]) -> Response {
    let err = |status: StatusCode, msg: String| json_response(status, json!({ "error": msg }));
    let failing = match *method {
        Method::GET => None,
        Method::DELETE => Some(Vec::new()),
        Method::POST => {
            let v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return err(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
            };
            let list = v.get("failing").cloned().unwrap_or(v);
            match serde_json::from_value::<Vec<String>>(list) {
                Ok(l) => Some(l),
                Err(_) => {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "body must be a list of check names or {\"failing\": [...]}".into(),
                    )
                }
            }
        }
        _ => {
            return err(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{method} is not allowed on /_sim/kube/{cluster}/readyz (GET, POST, DELETE)"
                ),
            )
        }
    };
    if let Some(l) = &failing {
        if let Err(e) = crate::stage::check_readyz(l) {
            return err(StatusCode::BAD_REQUEST, e);
        }
    }
    let now = now_secs();
    let mut inner = app.lock();
    let Some(st) = inner.world.staging_mut(cluster) else {
        return err(StatusCode::NOT_FOUND, format!("no cluster {cluster}"));
    };
    if let Some(l) = failing {
        st.readyz_failing = l;
    }
    let shown = json!({ "failing": st.readyz_failing });
    if *method != Method::GET {
        app.save_logged(&inner, now);
    }
    json_response(StatusCode::OK, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    fn futures_are_send(app: Arc<App>, h: HeaderMap, r: Response) {
        fn send<T: Send>(_: T) {}
        send(faulted(None, r, None, std::time::Duration::ZERO));
        send(eks_request(&app, Method::GET, "/", None, &h, Bytes::new()));
    }

    #[test]
    fn request_rates_take_the_busiest_second() {
        let v = request_rates(&[11.0, 10.0, 10.2, 10.4, 10.6, 10.8, 12.5]);
        assert_eq!(v["count"], 7);
        // 10.0 .. 10.8 (or 10.2 .. 11.0) holds five requests; a window is [t, t+1s), so
        // 10.0 and 11.0 are never in the same one.
        assert_eq!(v["peak_per_second"], 5);
        assert_eq!(request_rates(&[])["peak_per_second"], 0);
    }
}
