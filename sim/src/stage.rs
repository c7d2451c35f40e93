//! Kubernetes-side state staged through world files, the same for every cluster type with a
//! Kubernetes API (EKS, GKE, AKS, K3s/RKE2, kubeadm): raw `objects`, Helm 3 release records
//! (`helm_release` blocks) and failing readiness checks (`readyz_failing`).
//!
//! Helm releases are stored the way Helm 3's secrets driver stores them
//! (`helm.sh/helm/v3 pkg/storage/driver/secrets.go` and `util.go`): a Secret
//! `sh.helm.release.v1.NAME.vREVISION` of type `helm.sh/release.v1`, labels `name`, `owner=helm`,
//! `status`, `version`, `createdAt`, and `data.release` = base64(gzip(release JSON)) — which the
//! Secret's JSON encoding base64-encodes once more.

use std::io::Write;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::world::{fmt_time, parse_time, OrderedMap};

/// What a world file stages in one cluster's Kubernetes API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Staging {
    /// Raw objects, stored as given at every start.
    pub objects: Vec<Value>,
    pub helm: Vec<HelmRelease>,
    /// Names of readiness checks that fail (`/readyz` answers 500).
    pub readyz_failing: Vec<String>,
}

/// Helm release statuses (`helm.sh/helm/v3 pkg/release/status.go`).
pub const HELM_STATUSES: &[&str] = &[
    "unknown",
    "deployed",
    "uninstalled",
    "superseded",
    "failed",
    "uninstalling",
    "pending-install",
    "pending-upgrade",
    "pending-rollback",
];

#[derive(Debug, Clone, PartialEq)]
pub struct HelmRelease {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: String,
    pub chart: String,
    pub chart_version: String,
    pub app_version: Option<String>,
    pub description: String,
    pub first_deployed: f64,
    pub last_deployed: f64,
    pub manifest: String,
    /// User-supplied values (`config` in the release).
    pub values: Value,
}

/// `helm_release "NAME" { … }` in a world file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmReleaseFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub chart: String,
    pub chart_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_deployed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deployed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Helm's release-name rule: a DNS-1123 subdomain of at most 53 characters.
fn valid_release_name(s: &str) -> bool {
    s.len() <= 53 && s.split('.').all(dns_label)
}

/// Build the staging from a cluster block's `objects`, `helm_release` and `readyz_failing`.
/// `plans_served`: the cluster serves `upgrade.cattle.io/v1` Plans (K3s/RKE2 with SUC).
/// `now` fills in missing Helm timestamps (they are written back, so restarts keep them).
pub fn from_file(
    objects: Option<Vec<Value>>,
    helm: OrderedMap<HelmReleaseFile>,
    readyz_failing: Option<Vec<String>>,
    plans_served: bool,
    now: f64,
) -> Result<Staging, String> {
    let objects = objects.unwrap_or_default();
    let mut seen: Vec<(crate::kube::Kind, String, String)> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let (kind, ns, name) =
            crate::kube::check_staged(o, plans_served).map_err(|e| format!("objects[{i}]: {e}"))?;
        if seen.iter().any(|s| *s == (kind, ns.clone(), name.clone())) {
            return Err(format!(
                "objects[{i}]: {} {}/{name} is staged twice",
                o["kind"].as_str().unwrap_or(""),
                ns
            ));
        }
        seen.push((kind, ns, name));
    }
    let mut releases = Vec::new();
    for (name, f) in helm.0 {
        let ctx = format!("helm_release \"{name}\"");
        let r = release_from_file(&name, f, now).map_err(|e| format!("{ctx}: {e}"))?;
        let key = (
            crate::kube::Kind::Secret,
            r.namespace.clone(),
            r.secret_name(),
        );
        if seen.contains(&key) {
            return Err(format!(
                "{ctx}: its Secret {}/{} is also staged in objects",
                key.1, key.2
            ));
        }
        seen.push(key);
        releases.push(r);
    }
    let readyz_failing = readyz_failing.unwrap_or_default();
    check_readyz(&readyz_failing)?;
    Ok(Staging {
        objects,
        helm: releases,
        readyz_failing,
    })
}

/// Every name must be one of the apiserver's readiness checks.
pub fn check_readyz(names: &[String]) -> Result<(), String> {
    for n in names {
        if !crate::kube::api::READYZ_CHECKS.contains(&n.as_str()) {
            return Err(format!(
                "readyz_failing: `{n}` is not a readiness check of the apiserver ({})",
                crate::kube::api::READYZ_CHECKS.join(", ")
            ));
        }
    }
    Ok(())
}

fn release_from_file(name: &str, f: HelmReleaseFile, now: f64) -> Result<HelmRelease, String> {
    if !valid_release_name(name) {
        return Err("release names are DNS-1123 subdomains of at most 53 characters".into());
    }
    let namespace = f.namespace.unwrap_or_else(|| "default".into());
    if !dns_label(&namespace) {
        return Err(format!("namespace `{namespace}` is not a DNS label"));
    }
    let revision = f.revision.unwrap_or(1);
    if revision == 0 {
        return Err("revision must be at least 1".into());
    }
    let status = f.status.unwrap_or_else(|| "deployed".into());
    if !HELM_STATUSES.contains(&status.as_str()) {
        return Err(format!(
            "status `{status}` must be one of {}",
            HELM_STATUSES.join(", ")
        ));
    }
    if f.chart.is_empty() || f.chart_version.is_empty() {
        return Err("chart and chart_version must not be empty".into());
    }
    let last_deployed = match &f.last_deployed {
        Some(t) => parse_time("last_deployed", t)?,
        None => now,
    };
    let first_deployed = match &f.first_deployed {
        Some(t) => parse_time("first_deployed", t)?,
        None => last_deployed,
    };
    let values = f.values.unwrap_or_else(|| json!({}));
    if !values.is_object() {
        return Err("values must be an object".into());
    }
    let description = f.description.unwrap_or_else(|| {
        if revision == 1 {
            "Install complete".into()
        } else {
            "Upgrade complete".into()
        }
    });
    Ok(HelmRelease {
        name: name.to_string(),
        namespace,
        revision,
        status,
        chart: f.chart,
        chart_version: f.chart_version,
        app_version: f.app_version,
        description,
        first_deployed,
        last_deployed,
        manifest: f.manifest.unwrap_or_default(),
        values,
    })
}

/// The file form (defaults written out).
pub fn to_file(
    s: &Staging,
) -> (
    Option<Vec<Value>>,
    OrderedMap<HelmReleaseFile>,
    Option<Vec<String>>,
) {
    let helm = s
        .helm
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                HelmReleaseFile {
                    namespace: Some(r.namespace.clone()),
                    revision: Some(r.revision),
                    status: Some(r.status.clone()),
                    chart: r.chart.clone(),
                    chart_version: r.chart_version.clone(),
                    app_version: r.app_version.clone(),
                    description: Some(r.description.clone()),
                    first_deployed: Some(fmt_time(r.first_deployed)),
                    last_deployed: Some(fmt_time(r.last_deployed)),
                    manifest: Some(r.manifest.clone()),
                    values: r
                        .values
                        .as_object()
                        .is_some_and(|m| !m.is_empty())
                        .then(|| r.values.clone()),
                },
            )
        })
        .collect();
    (
        (!s.objects.is_empty()).then(|| s.objects.clone()),
        OrderedMap(helm),
        (!s.readyz_failing.is_empty()).then(|| s.readyz_failing.clone()),
    )
}

// ---------------------------------------------------------------------------------------------
// Helm 3 release encoding
// ---------------------------------------------------------------------------------------------

// Field order and omitempty rules of helm.sh/helm/v3 pkg/release (Release, Info) and
// pkg/chart (Chart, Metadata), so the JSON reads as Helm writes it.

#[derive(Serialize)]
struct ReleaseJson<'a> {
    name: &'a str,
    info: InfoJson<'a>,
    chart: ChartJson<'a>,
    config: &'a Value,
    #[serde(skip_serializing_if = "str::is_empty")]
    manifest: &'a str,
    version: u32,
    namespace: &'a str,
}

#[derive(Serialize)]
struct InfoJson<'a> {
    first_deployed: String,
    last_deployed: String,
    /// Helm's zero time marshals as "".
    deleted: &'a str,
    description: &'a str,
    status: &'a str,
}

#[derive(Serialize)]
struct ChartJson<'a> {
    metadata: MetadataJson<'a>,
    lock: Option<()>,
    templates: Vec<()>,
    values: Value,
    schema: Option<()>,
    files: Vec<()>,
}

#[derive(Serialize)]
struct MetadataJson<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    #[serde(rename = "appVersion", skip_serializing_if = "Option::is_none")]
    app_version: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl HelmRelease {
    /// `sh.helm.release.v1.NAME.vREVISION` (Helm's `makeKey`).
    pub fn secret_name(&self) -> String {
        format!("sh.helm.release.v1.{}.v{}", self.name, self.revision)
    }

    /// The release as Helm 3 marshals it before compressing.
    pub fn release_json(&self) -> String {
        let r = ReleaseJson {
            name: &self.name,
            info: InfoJson {
                first_deployed: fmt_time(self.first_deployed),
                last_deployed: fmt_time(self.last_deployed),
                deleted: "",
                description: &self.description,
                status: &self.status,
            },
            chart: ChartJson {
                metadata: MetadataJson {
                    name: &self.chart,
                    version: &self.chart_version,
                    api_version: "v2",
                    app_version: self.app_version.as_deref(),
                    kind: "application",
                },
                lock: None,
                templates: Vec::new(),
                values: json!({}),
                schema: None,
                files: Vec::new(),
            },
            config: &self.values,
            manifest: &self.manifest,
            version: self.revision,
            namespace: &self.namespace,
        };
        serde_json::to_string(&r).expect("release serializes")
    }

    /// The Secret Helm's secrets driver stores for this release revision.
    pub fn secret(&self) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        // encodeRelease: gzip (best compression) then base64 StdEncoding.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(self.release_json().as_bytes())
            .expect("gzip to memory");
        let encoded = b64.encode(gz.finish().expect("gzip to memory"));
        // Secret.data is []byte: its JSON form base64-encodes the encoded release again.
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.secret_name(),
                "namespace": self.namespace,
                "creationTimestamp": crate::kube::k8s_time(self.last_deployed),
                "labels": {
                    "name": self.name,
                    "owner": "helm",
                    "status": self.status,
                    "version": self.revision.to_string(),
                    "createdAt": (self.last_deployed.floor() as i64).to_string(),
                },
            },
            "type": "helm.sh/release.v1",
            "data": { "release": b64.encode(encoded) },
        })
    }
}

/// Decode a Helm release Secret's `data.release` (as served in JSON) back to the release JSON.
#[cfg(test)]
pub fn decode_release(data_release: &str) -> Result<Value, String> {
    use std::io::Read;
    let b64 = base64::engine::general_purpose::STANDARD;
    let once = b64
        .decode(data_release)
        .map_err(|e| format!("Secret data: {e}"))?;
    let gz = b64.decode(once).map_err(|e| format!("release: {e}"))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .map_err(|e| format!("gzip: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("release JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> HelmRelease {
        release_from_file(
            "shop",
            HelmReleaseFile {
                namespace: Some("web".into()),
                revision: Some(3),
                status: Some("deployed".into()),
                chart: "shop".into(),
                chart_version: "1.2.0".into(),
                app_version: Some("2.0".into()),
                manifest: Some("---\napiVersion: v1\nkind: ConfigMap\n".into()),
                last_deployed: Some("2025-01-02T03:04:05Z".into()),
                ..Default::default()
            },
            0.0,
        )
        .unwrap()
    }

    #[test]
    fn helm_secret_matches_the_secrets_driver() {
        let s = release().secret();
        assert_eq!(s["metadata"]["name"], "sh.helm.release.v1.shop.v3");
        assert_eq!(s["metadata"]["namespace"], "web");
        assert_eq!(s["type"], "helm.sh/release.v1");
        let l = &s["metadata"]["labels"];
        assert_eq!(
            (&l["name"], &l["owner"], &l["status"], &l["version"]),
            (
                &json!("shop"),
                &json!("helm"),
                &json!("deployed"),
                &json!("3")
            )
        );
        assert_eq!(l["createdAt"], "1735787045");
        // Two base64 layers around gzip: the first decode gives base64 text, not gzip bytes.
        let once = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["release"].as_str().unwrap())
            .unwrap();
        assert!(once
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)));
        let r = decode_release(s["data"]["release"].as_str().unwrap()).unwrap();
        assert_eq!(r["name"], "shop");
        assert_eq!(r["namespace"], "web");
        assert_eq!(r["version"], 3);
        assert_eq!(r["info"]["status"], "deployed");
        assert_eq!(r["info"]["first_deployed"], "2025-01-02T03:04:05Z");
        assert_eq!(r["info"]["description"], "Upgrade complete");
        assert_eq!(r["chart"]["metadata"]["name"], "shop");
        assert_eq!(r["chart"]["metadata"]["version"], "1.2.0");
        assert_eq!(r["chart"]["metadata"]["appVersion"], "2.0");
        assert_eq!(r["chart"]["metadata"]["apiVersion"], "v2");
        assert_eq!(r["manifest"], "---\napiVersion: v1\nkind: ConfigMap\n");
        assert_eq!(r["config"], json!({}));
    }

    #[test]
    fn release_json_keeps_helms_field_order() {
        let j = release().release_json();
        assert!(
            j.starts_with("{\"name\":\"shop\",\"info\":{\"first_deployed\":"),
            "{j}"
        );
        // Top-level members after the chart, in Go struct order.
        let pos = |k: &str| j.find(k).unwrap();
        assert!(
            pos("\"chart\":{\"metadata\":{\"name\":\"shop\",\"version\":\"1.2.0\"")
                < pos(",\"config\":{}")
        );
        assert!(pos(",\"config\":{}") < pos(",\"manifest\":"));
        assert!(j.ends_with(",\"version\":3,\"namespace\":\"web\"}"), "{j}");
    }

    #[test]
    fn bad_releases_and_checks_are_refused() {
        let bad = |f: HelmReleaseFile| release_from_file("shop", f, 0.0).unwrap_err();
        let base = || HelmReleaseFile {
            chart: "c".into(),
            chart_version: "1".into(),
            ..Default::default()
        };
        assert!(bad(HelmReleaseFile {
            status: Some("happy".into()),
            ..base()
        })
        .contains("must be one of"));
        assert!(bad(HelmReleaseFile {
            revision: Some(0),
            ..base()
        })
        .contains("at least 1"));
        assert!(release_from_file("Shop", base(), 0.0).is_err());
        assert!(check_readyz(&["etcd".into()]).is_ok());
        assert!(check_readyz(&["etcd2".into()])
            .unwrap_err()
            .contains("not a readiness check"));
    }
}
