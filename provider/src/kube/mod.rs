//! kup's hands inside a cluster: [`KubeNodeOps`] implements [`NodeOps`] on the Kubernetes
//! API with the `kube` crate, for every provider that must move pods itself (blue/green on
//! EKS, kubeadm, K3s).
//!
//! * [`KubeNodeOps::from_kubeconfig`]: a kubeconfig file (or `KUBECONFIG` /
//!   `~/.kube/config`) and a context (or its current context).
//! * [`KubeNodeOps::from_endpoint`]: an API server URL, its CA bundle (base64 PEM, as
//!   kubeconfig's `certificate-authority-data` and EKS's `certificateAuthority.data` carry
//!   it) and a bearer token.
//! * [`KubeNodeOps::from_token_source`]: the same with a token that expires (EKS tokens
//!   live 15 minutes): the client is rebuilt with a fresh token before it runs out.
//!
//! Nothing global is installed here: the binary installs rustls's CryptoProvider once.

mod convert;
mod drain;
pub mod grouped;
pub mod quantity;
mod scan;
pub mod selector;
mod wait;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::try_join3;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, ObjectList, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kup_engine::kube::{DrainError, DrainReport, KubeSnapshot};
use kup_engine::model::{DrainSpec, TlsSettings};
use kup_engine::Minor;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::{ErrorKind, NodeOps, ProviderError};

pub use convert::{node_from, pdb_from, pod_from, pod_requests};
pub use drain::{classify, Candidate, DrainPlan, Verdict};
pub use scan::decode_helm_release;

/// The label EKS managed node groups put on their nodes.
pub const EKS_NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// Page size for LIST calls (the apiserver's default limit is unbounded; kubectl uses 500).
const PAGE: u32 = 500;

/// A bearer token that expires, fetched again when the client is rebuilt.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self) -> Result<String, ProviderError>;
    /// How long a token may be used before fetching a new one.
    fn refresh_after(&self) -> Duration {
        Duration::from_secs(10 * 60)
    }
}

enum Conn {
    Static(Client),
    Refreshing {
        config: Box<Config>,
        source: Arc<dyn TokenSource>,
        cache: Mutex<Option<(Client, Instant)>>,
    },
}

/// [`NodeOps`] on a cluster's Kubernetes API.
pub struct KubeNodeOps {
    conn: Conn,
    node_group_label: String,
    /// Where this talks to, for messages: `https://… (context prod in ~/.kube/config)`.
    target: String,
    /// The API server's URL.
    url: String,
}

/// `~` and `~/…` expanded to the home directory.
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        if let Some(h) = home_dir() {
            return h;
        }
    } else if let Some(rest) = p.strip_prefix("~/") {
        if let Some(h) = home_dir() {
            return h.join(rest);
        }
    }
    PathBuf::from(p)
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

pub(crate) fn cfg_err(message: String) -> ProviderError {
    ProviderError::new(ErrorKind::Other, message).with_code("KubeconfigError")
}

/// Turn a `kube` error into a [`ProviderError`] saying what was being done.
pub(crate) fn kube_err(e: kube::Error, what: &str) -> ProviderError {
    match &e {
        kube::Error::Api(s) => {
            let kind = match s.code {
                401 | 403 => ErrorKind::Auth,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                429 | 500..=599 => ErrorKind::Transient,
                400..=499 => ErrorKind::Invalid,
                _ => ErrorKind::Other,
            };
            let reason = if s.reason.is_empty() {
                format!("HTTP {}", s.code)
            } else {
                s.reason.clone()
            };
            let mut err =
                ProviderError::new(kind, format!("{what}: {} ({reason})", s.message.trim()))
                    .with_code(reason);
            if kind == ErrorKind::Auth {
                err.message.push_str(
                    "; check the credentials kup uses for this cluster (kubeconfig user, \
                     or for EKS the IAM identity's access entry)",
                );
            }
            err
        }
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::SerdeError(_) => {
            ProviderError::new(ErrorKind::Transient, format!("{what}: {e}"))
        }
        kube::Error::Auth(_) => ProviderError::new(ErrorKind::Auth, format!("{what}: {e}")),
        _ => ProviderError::new(ErrorKind::Other, format!("{what}: {e}")),
    }
}

/// Worth retrying: connection trouble, 429 (not from eviction), 5xx, and a success whose
/// body is not the JSON the apiserver sends (a proxy's error page in front of it, or a body
/// cut short): the request may be sent again because every write kup makes is idempotent
/// (server-side apply, merge patches, creates that take AlreadyExists as done).
pub(crate) fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || (500..=599).contains(&s.code),
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::SerdeError(_) => true,
        _ => false,
    }
}

/// Run `f` again on transient errors, with backoff, a few times.
pub(crate) async fn retrying<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if is_transient(&e) && attempt < 5 => {
                tracing::debug!(error = %e, attempt, "kube request failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every item of a paginated LIST.
pub(crate) async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = lp.clone().limit(PAGE);
    loop {
        let page: ObjectList<K> = retrying(|| api.list(&lp)).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

fn finish_config(mut config: Config) -> Config {
    // kup retries by itself: the client's built-in retry would swallow the 429s that
    // eviction uses to say "a PodDisruptionBudget forbids this now".
    config.default_retry = false;
    config
}

/// A one-cluster kubeconfig for `server` with an optional CA and no user.
fn endpoint_kubeconfig(server: &str, ca_pem_base64: Option<&str>) -> Result<Kubeconfig, String> {
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(ca) = ca_pem_base64.filter(|c| !c.trim().is_empty()) {
        cluster["certificate-authority-data"] = serde_json::Value::String(ca.trim().to_string());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "kup", "cluster": cluster }],
        "users": [{ "name": "kup", "user": {} }],
        "contexts": [{ "name": "kup", "context": { "cluster": "kup", "user": "kup" } }],
        "current-context": "kup",
    }))
    .map_err(|e| e.to_string())
}

async fn endpoint_config(
    url: &str,
    ca_pem_base64: Option<&str>,
    tls: &TlsSettings,
) -> Result<Config, ProviderError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(cfg_err(format!(
            "Kubernetes API endpoint `{url}` is not an http(s) URL"
        )));
    }
    let kc = endpoint_kubeconfig(url, ca_pem_base64)
        .map_err(|e| cfg_err(format!("Kubernetes API endpoint {url}: {e}")))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            cfg_err(format!(
                "Kubernetes API endpoint {url}: {e} (is the certificate authority data a \
                 base64-encoded PEM bundle?)"
            ))
        })?;
    with_tls(finish_config(config), tls)
}

/// The provider block's TLS settings on a client for a cluster the provider described:
/// `ca_file` is trusted besides the cluster's own CA, and `insecure_skip_tls_verify`
/// turns verification off (the plan warns).
fn with_tls(mut config: Config, tls: &TlsSettings) -> Result<Config, ProviderError> {
    config.accept_invalid_certs |= tls.insecure_skip_tls_verify;
    let extra = crate::tls::ca_certs_der(tls)?;
    if !extra.is_empty() {
        config.root_cert.get_or_insert_with(Vec::new).extend(extra);
    }
    Ok(config)
}

/// The kubeconfig's tokens, passwords and client keys, for the redactor (kube keeps them
/// as secrets, but a debug log of a request or an error could still quote one).
fn register_kubeconfig_secrets(kc: &Kubeconfig) {
    for named in &kc.auth_infos {
        // Serializing is the one way kube exposes them.
        let Ok(v) = serde_json::to_value(&named.auth_info) else {
            continue;
        };
        for key in ["token", "password", "client-key-data"] {
            if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
                kup_engine::redact::register(s);
            }
        }
    }
}

fn with_bearer(mut config: Config, token: &str) -> Result<Config, ProviderError> {
    kup_engine::redact::register(token);
    let mut v = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        ProviderError::new(
            ErrorKind::Auth,
            "the bearer token for the Kubernetes API contains characters an HTTP header \
             cannot carry",
        )
    })?;
    v.set_sensitive(true);
    config.headers.push((http::header::AUTHORIZATION, v));
    Ok(config)
}

fn client_for(config: Config, target: &str) -> Result<Client, ProviderError> {
    Client::try_from(config).map_err(|e| {
        cfg_err(format!(
            "cannot build a Kubernetes client for {target}: {e}"
        ))
    })
}

impl KubeNodeOps {
    /// From a kubeconfig: `path` (`~` expanded) or else `KUBECONFIG` / `~/.kube/config`;
    /// `context` or else the file's current context.
    /// The cluster's `kubeconfig`/`context` from the configuration, when it names either;
    /// `None` leaves the provider to connect its own way (e.g. endpoint + token).
    pub async fn from_access(
        access: &crate::KubeAccess,
        node_group_label: &str,
    ) -> Result<Option<KubeNodeOps>, ProviderError> {
        if access.kubeconfig.is_none() && access.context.is_none() {
            return Ok(None);
        }
        Self::from_kubeconfig(
            access.kubeconfig.as_deref(),
            access.context.as_deref(),
            node_group_label,
        )
        .await
        .map(Some)
    }

    pub async fn from_kubeconfig(
        path: Option<&str>,
        context: Option<&str>,
        node_group_label: &str,
    ) -> Result<KubeNodeOps, ProviderError> {
        let (kc, source) = match path {
            Some(p) => {
                let file = expand_tilde(p);
                if !file.exists() {
                    return Err(cfg_err(format!(
                        "kubeconfig {} does not exist (from `kubeconfig = \"{p}\"`)",
                        file.display()
                    )));
                }
                let kc = Kubeconfig::read_from(&file).map_err(|e| {
                    cfg_err(format!("cannot read kubeconfig {}: {e}", file.display()))
                })?;
                (kc, file.display().to_string())
            }
            None => {
                let source = match std::env::var("KUBECONFIG") {
                    Ok(v) if !v.is_empty() => format!("KUBECONFIG={v}"),
                    _ => default_kubeconfig_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.kube/config".into()),
                };
                let kc = Kubeconfig::read().map_err(|e| {
                    cfg_err(format!(
                        "cannot read kubeconfig {source}: {e}; set `kubeconfig = \"PATH\"` in \
                         the cluster block or export KUBECONFIG"
                    ))
                })?;
                (kc, source)
            }
        };
        let ctx = match context {
            Some(c) => c.to_string(),
            None => kc
                .current_context
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    cfg_err(format!(
                        "kubeconfig {source} has no current-context; set `context = \"NAME\"` in \
                     the cluster block"
                    ))
                })?,
        };
        if !kc.contexts.iter().any(|c| c.name == ctx) {
            let have: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(cfg_err(format!(
                "kubeconfig {source} has no context `{ctx}` (it has: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
        // The user's own kubeconfig carries its own TLS settings.
        Self::from_parsed_kubeconfig(kc, &source, ctx, node_group_label, &TlsSettings::default())
            .await
    }

    /// From a kubeconfig a provider handed out (AKS's listClusterUserCredential), using
    /// its current context.
    pub async fn from_kubeconfig_yaml(
        yaml: &str,
        source: &str,
        node_group_label: &str,
        tls: &TlsSettings,
    ) -> Result<KubeNodeOps, ProviderError> {
        let kc = Kubeconfig::from_yaml(yaml)
            .map_err(|e| cfg_err(format!("cannot read the kubeconfig from {source}: {e}")))?;
        let ctx = kc
            .current_context
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| kc.contexts.first().map(|c| c.name.clone()))
            .ok_or_else(|| cfg_err(format!("the kubeconfig from {source} has no context")))?;
        Self::from_parsed_kubeconfig(kc, source, ctx, node_group_label, tls).await
    }

    async fn from_parsed_kubeconfig(
        kc: Kubeconfig,
        source: &str,
        ctx: String,
        node_group_label: &str,
        tls: &TlsSettings,
    ) -> Result<KubeNodeOps, ProviderError> {
        register_kubeconfig_secrets(&kc);
        let opts = KubeConfigOptions {
            context: Some(ctx.clone()),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| cfg_err(format!("kubeconfig {source}, context `{ctx}`: {e}")))?;
        let target = format!("{} (context `{ctx}` in {source})", config.cluster_url);
        let url = config.cluster_url.to_string();
        let client = client_for(with_tls(finish_config(config), tls)?, &target)?;
        Ok(KubeNodeOps {
            conn: Conn::Static(client),
            node_group_label: node_group_label.to_string(),
            target,
            url,
        })
    }

    /// From an API server URL, its CA bundle (base64-encoded PEM; `None` = the system's
    /// roots) and a bearer token (empty = none).
    pub async fn from_endpoint(
        url: &str,
        ca_pem_base64: Option<&str>,
        bearer_token: String,
        node_group_label: &str,
    ) -> Result<KubeNodeOps, ProviderError> {
        let mut config = endpoint_config(url, ca_pem_base64, &TlsSettings::default()).await?;
        if !bearer_token.is_empty() {
            config = with_bearer(config, &bearer_token)?;
        }
        let client = client_for(config, url)?;
        Ok(KubeNodeOps {
            conn: Conn::Static(client),
            node_group_label: node_group_label.to_string(),
            target: url.to_string(),
            url: url.to_string(),
        })
    }

    /// Like [`from_endpoint`](Self::from_endpoint) with a token fetched from `source`
    /// and fetched again every `source.refresh_after()`. The first token is fetched now,
    /// so a credentials problem shows up here.
    pub async fn from_token_source(
        url: &str,
        ca_pem_base64: Option<&str>,
        source: Arc<dyn TokenSource>,
        node_group_label: &str,
        tls: &TlsSettings,
    ) -> Result<KubeNodeOps, ProviderError> {
        let config = endpoint_config(url, ca_pem_base64, tls).await?;
        let ops = KubeNodeOps {
            conn: Conn::Refreshing {
                config: Box::new(config),
                source,
                cache: Mutex::new(None),
            },
            node_group_label: node_group_label.to_string(),
            target: url.to_string(),
            url: url.to_string(),
        };
        ops.client().await?;
        Ok(ops)
    }

    /// The label that ties a node to its node group.
    pub fn node_group_label(&self) -> &str {
        &self.node_group_label
    }

    /// The API server this talks to, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The API server's URL (`https://10.0.0.1:6443`).
    pub fn server_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// A client with a valid token.
    pub async fn client(&self) -> Result<Client, ProviderError> {
        match &self.conn {
            Conn::Static(c) => Ok(c.clone()),
            Conn::Refreshing {
                config,
                source,
                cache,
            } => {
                let mut guard = cache.lock().await;
                if let Some((c, at)) = guard.as_ref() {
                    if at.elapsed() < source.refresh_after() {
                        return Ok(c.clone());
                    }
                }
                let token = source.token().await?;
                let c = client_for(with_bearer((**config).clone(), &token)?, &self.target)?;
                *guard = Some((c.clone(), Instant::now()));
                Ok(c)
            }
        }
    }

    fn err(&self, e: kube::Error, what: &str) -> ProviderError {
        kube_err(e, &format!("{what} on {}", self.target))
    }

    /// Nodes, pods (all namespaces) and policy/v1 PDBs.
    pub async fn read_snapshot(&self) -> Result<KubeSnapshot, ProviderError> {
        let client = self.client().await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let pods: Api<Pod> = Api::all(client.clone());
        let pdbs: Api<PodDisruptionBudget> = Api::all(client);
        let lp = ListParams::default();
        let (nodes, pods, pdbs) = try_join3(
            async {
                list_all(&nodes, &lp)
                    .await
                    .map_err(|e| self.err(e, "listing nodes"))
            },
            async {
                list_all(&pods, &lp)
                    .await
                    .map_err(|e| self.err(e, "listing pods"))
            },
            async {
                list_all(&pdbs, &lp)
                    .await
                    .map_err(|e| self.err(e, "listing PodDisruptionBudgets (policy/v1)"))
            },
        )
        .await?;
        let bad =
            |m: String| ProviderError::new(ErrorKind::Other, format!("{m} ({})", self.target));
        let mut snap = KubeSnapshot {
            nodes: nodes
                .iter()
                .map(|n| node_from(n, &self.node_group_label))
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            pods: pods
                .iter()
                .map(pod_from)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            pdbs: pdbs.iter().map(pdb_from).collect(),
        };
        snap.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        snap.pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        snap.pdbs
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(snap)
    }

    /// Cordon or uncordon one node with a JSON merge patch (a no-op when already so).
    pub async fn patch_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> Result<(), ProviderError> {
        let client = self.client().await?;
        let api: Api<Node> = Api::all(client);
        let what = if unschedulable {
            format!("cordoning node {node}")
        } else {
            format!("uncordoning node {node}")
        };
        let current = retrying(|| api.get(node))
            .await
            .map_err(|e| self.err(e, &what))?;
        let now = current
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if now == unschedulable {
            return Ok(());
        }
        // `null` removes the field, as `kubectl uncordon` leaves it.
        let value = if unschedulable {
            serde_json::Value::Bool(true)
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({ "spec": { "unschedulable": value } });
        let pp = PatchParams::default();
        let patch = Patch::Merge(&patch);
        retrying(|| api.patch(node, &pp, &patch))
            .await
            .map_err(|e| self.err(e, &what))?;
        Ok(())
    }
}

fn default_kubeconfig_path() -> Option<PathBuf> {
    home_dir().map(|h| h.join(".kube").join("config"))
}

#[async_trait]
impl NodeOps for KubeNodeOps {
    async fn snapshot(&self) -> Result<KubeSnapshot, ProviderError> {
        self.read_snapshot().await
    }

    async fn scan(&self) -> Result<kup_engine::kube::ClusterScan, ProviderError> {
        self.read_scan().await
    }

    async fn workloads(&self) -> Result<Vec<kup_engine::kube::KubeWorkload>, ProviderError> {
        self.read_workloads().await
    }

    async fn smoke_pod(
        &self,
        namespace: &str,
        name: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<Duration, ProviderError> {
        self.run_smoke_pod(namespace, name, image, timeout).await
    }

    async fn set_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> Result<(), ProviderError> {
        self.patch_unschedulable(node, unschedulable).await
    }

    async fn drain(&self, node: &str, opts: &DrainSpec) -> Result<DrainReport, DrainError> {
        drain::run(self, node, opts).await
    }

    async fn wait_ready(
        &self,
        node_group: &str,
        count: usize,
        minor: Minor,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        wait::nodes_ready(self, node_group, count, minor, timeout).await
    }

    async fn unavailable_workloads(&self) -> Result<Vec<String>, ProviderError> {
        let mut out: Vec<String> = self
            .read_workloads()
            .await?
            .into_iter()
            .filter(|w| !w.is_available())
            .map(|w| format!("{}: {}/{} available", w.address(), w.available, w.replicas))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands() {
        let home = home_dir().unwrap();
        assert_eq!(expand_tilde("~/x/y"), home.join("x/y"));
        assert_eq!(expand_tilde("~"), home);
        assert_eq!(expand_tilde("/abs"), PathBuf::from("/abs"));
        assert_eq!(expand_tilde("rel/~"), PathBuf::from("rel/~"));
    }

    #[tokio::test]
    async fn kubeconfig_errors_name_the_file_and_context() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = KubeNodeOps::from_kubeconfig(Some(missing.to_str().unwrap()), None, "l")
            .await
            .err()
            .unwrap();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert!(
            e.message.contains(missing.to_str().unwrap()),
            "{}",
            e.message
        );

        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n\
             - name: b\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let p = file.to_str().unwrap();
        let e = KubeNodeOps::from_kubeconfig(Some(p), None, "l")
            .await
            .err()
            .unwrap();
        assert!(
            e.message.contains("has no current-context"),
            "{}",
            e.message
        );
        let e = KubeNodeOps::from_kubeconfig(Some(p), Some("zz"), "l")
            .await
            .err()
            .unwrap();
        assert!(
            e.message.contains("has no context `zz` (it has: a, b)"),
            "{}",
            e.message
        );
        let ok = KubeNodeOps::from_kubeconfig(Some(p), Some("b"), "l")
            .await
            .unwrap();
        assert!(ok.target().contains("context `b`"), "{}", ok.target());
        // Unreachable: a transient error naming the endpoint.
        let e = ok.snapshot().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e:?}");
        assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
    }

    #[tokio::test]
    async fn endpoint_rejects_non_urls_and_bad_ca() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let e = KubeNodeOps::from_endpoint("127.0.0.1:6443", None, String::new(), "l")
            .await
            .err()
            .unwrap();
        assert!(e.message.contains("not an http(s) URL"), "{}", e.message);
        let e = KubeNodeOps::from_endpoint("https://x", Some("not base64!"), String::new(), "l")
            .await
            .err()
            .unwrap();
        assert!(e.message.contains("https://x"), "{}", e.message);
    }

    #[tokio::test]
    async fn the_provider_blocks_tls_settings_reach_the_cluster_client() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let plain = endpoint_config("https://x", None, &TlsSettings::default())
            .await
            .unwrap();
        assert!(!plain.accept_invalid_certs);
        assert_eq!(plain.root_cert, None);
        let tls = TlsSettings {
            insecure_skip_tls_verify: true,
            ca_file: Some(ca.display().to_string()),
        };
        let c = endpoint_config("https://x", None, &tls).await.unwrap();
        assert!(c.accept_invalid_certs);
        assert_eq!(c.root_cert, Some(vec![vec![0, 1, 2], vec![3, 4, 5]]));
    }

    #[test]
    fn kubeconfig_credentials_are_known_to_the_redactor() {
        let kc = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: kc-token-3f9d1a\n    client-key-data: a2V5LWRhdGEtNzc0Mg==\n",
        )
        .unwrap();
        register_kubeconfig_secrets(&kc);
        assert_eq!(
            kup_engine::redact::redact("Bearer kc-token-3f9d1a / a2V5LWRhdGEtNzc0Mg=="),
            "Bearer (sensitive value) / (sensitive value)"
        );
    }
}
