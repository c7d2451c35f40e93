//! `provider "kup" { eks { ... } gke { ... } }`: the same settings as kup's own `provider`
//! blocks, one nested block per kind, written out as kup HCL and checked by kup's loader.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::hcl::{path, HclWriter, Step};

/// The provider kinds, as kup's `provider` block labels.
pub const KINDS: &[&str] = &["eks", "gke", "aks", "k3s", "rke2", "kubeadm"];

/// One `eks { ... }` (etc.) block: kup's `provider "eks" { ... }`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProviderBlock {
    pub alias: Value<String>,
    pub region: Value<String>,
    pub profile: Value<String>,
    pub project: Value<String>,
    pub location: Value<String>,
    pub subscription_id: Value<String>,
    pub resource_group: Value<String>,
    pub api_version: Value<String>,
    pub channel_server: Value<String>,
    pub versions: Value<Vec<String>>,
    pub endpoint: Value<String>,
    pub simulate: Value<bool>,
    pub speed: Value<f64>,
    pub poll_interval: Value<String>,
    pub requests_per_second: Value<f64>,
}

/// (attribute, type, description) of a provider block, in the order they are written.
const PROVIDER_ATTRS: &[(&str, &str, &str)] = &[
    ("alias", "string", "Makes this block addressable as `KIND.ALIAS` in `kup_provider`."),
    ("region", "string", "EKS: the AWS region."),
    ("profile", "string", "EKS: the AWS profile; credentials come from the default chain."),
    ("project", "string", "GKE: the Google Cloud project."),
    ("location", "string", "GKE: the clusters' region or zone."),
    ("subscription_id", "string", "AKS: the Azure subscription."),
    ("resource_group", "string", "AKS: the clusters' resource group."),
    ("api_version", "string", "AKS: the ARM api-version to speak."),
    ("channel_server", "string", "K3s/RKE2: the release channel server."),
    ("versions", "list", "K3s/RKE2: the releases to use instead of asking the channel server."),
    ("endpoint", "string", "Another API URL (a private endpoint, or `kup sim serve`); plain http:// only to this machine."),
    ("simulate", "bool", "The endpoint is kup's simulator (its time runs `speed` times faster)."),
    ("speed", "number", "With simulate: simulated seconds per real second (default 600)."),
    ("poll_interval", "string", "How often running operations are polled, e.g. \"15s\"."),
    ("requests_per_second", "number", "EKS, GKE, AKS: at most this many API requests per second through this block."),
];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub eks: Value<Vec<ProviderBlock>>,
    pub gke: Value<Vec<ProviderBlock>>,
    pub aks: Value<Vec<ProviderBlock>>,
    pub k3s: Value<Vec<ProviderBlock>>,
    pub rke2: Value<Vec<ProviderBlock>>,
    pub kubeadm: Value<Vec<ProviderBlock>>,
    /// Where apply journals live (default `.kup/terraform` in Terraform's working
    /// directory).
    pub state_dir: Value<String>,
    /// A kup configuration directory whose `provider` blocks are used too.
    pub config_dir: Value<String>,
}

pub fn attr(ty: &str, description: &str, constraint: AttributeConstraint) -> Attribute {
    Attribute {
        attr_type: match ty {
            "string" => AttributeType::String,
            "bool" => AttributeType::Bool,
            "number" => AttributeType::Number,
            "list" => AttributeType::List(Box::new(AttributeType::String)),
            other => unreachable!("attribute type {other}"),
        },
        description: Description::plain(description),
        constraint,
        ..Default::default()
    }
}

pub fn schema() -> Schema {
    let block = Block {
        description: Description::plain(
            "kup's provider settings: one block per provider kind (eks, gke, aks, k3s, rke2, kubeadm), with the attributes of kup's `provider` block.",
        ),
        attributes: PROVIDER_ATTRS
            .iter()
            .map(|(n, t, d)| (n.to_string(), attr(t, d, AttributeConstraint::Optional)))
            .collect(),
        ..Default::default()
    };
    let mut blocks = std::collections::HashMap::new();
    for kind in KINDS {
        let mut b = block.clone();
        b.description = Description::plain(format!("kup's `provider \"{kind}\"` block."));
        blocks.insert(kind.to_string(), NestedBlock::List(b));
    }
    Schema {
        version: 1,
        block: Block {
            description: Description::plain(
                "Upgrades Kubernetes clusters with kup's planner, skew checks, strategies and journal.",
            ),
            attributes: [
                (
                    "state_dir".to_string(),
                    attr(
                        "string",
                        "Where apply journals are kept while a run is unfinished (default `.kup/terraform` in Terraform's working directory).",
                        AttributeConstraint::Optional,
                    ),
                ),
                (
                    "config_dir".to_string(),
                    attr(
                        "string",
                        "A kup configuration directory (`*.kup.hcl`) whose `provider` blocks are used as well, so kup and Terraform share one set of provider settings.",
                        AttributeConstraint::Optional,
                    ),
                ),
            ]
            .into_iter()
            .collect(),
            blocks,
            ..Default::default()
        },
    }
}

impl ProviderConfig {
    fn kinds(&self) -> [(&'static str, &Value<Vec<ProviderBlock>>); 6] {
        [
            ("eks", &self.eks),
            ("gke", &self.gke),
            ("aks", &self.aks),
            ("k3s", &self.k3s),
            ("rke2", &self.rke2),
            ("kubeadm", &self.kubeadm),
        ]
    }

    /// No value is still unknown (validation before other resources are known).
    pub fn is_known(&self) -> bool {
        !self.state_dir.is_unknown()
            && !self.config_dir.is_unknown()
            && self.kinds().iter().all(|(_, v)| match v {
                Value::Unknown => false,
                Value::Null => true,
                Value::Value(blocks) => blocks.iter().all(ProviderBlock::is_known),
            })
    }
}

impl ProviderBlock {
    /// A provider block kup's loader read from a configuration directory.
    fn from_spec(spec: &kup_engine::model::ProviderSpec) -> ProviderBlock {
        let v = |o: &Option<String>| Value::from(o.clone());
        ProviderBlock {
            alias: v(&spec.alias),
            region: v(&spec.region),
            profile: v(&spec.profile),
            project: v(&spec.project),
            location: v(&spec.location),
            subscription_id: v(&spec.subscription_id),
            resource_group: v(&spec.resource_group),
            api_version: v(&spec.api_version),
            channel_server: v(&spec.channel_server),
            versions: if spec.versions.is_empty() {
                Value::Null
            } else {
                Value::Value(spec.versions.clone())
            },
            endpoint: v(&spec.endpoint),
            simulate: if spec.simulate {
                Value::Value(true)
            } else {
                Value::Null
            },
            speed: spec.speed.into(),
            poll_interval: spec
                .poll_interval
                .map(|d| format!("{}ms", d.as_millis()))
                .into(),
            requests_per_second: spec.requests_per_second.into(),
        }
    }

    fn is_known(&self) -> bool {
        let strings = [
            &self.alias,
            &self.region,
            &self.profile,
            &self.project,
            &self.location,
            &self.subscription_id,
            &self.resource_group,
            &self.api_version,
            &self.channel_server,
            &self.endpoint,
            &self.poll_interval,
        ];
        strings.iter().all(|s| !s.is_unknown())
            && !self.versions.is_unknown()
            && !self.simulate.is_unknown()
            && !self.speed.is_unknown()
            && !self.requests_per_second.is_unknown()
    }

    /// `provider "KIND" { ... }`, each line attributed by `p` (given the attribute name,
    /// or "" for the block itself).
    fn write(&self, kind: &str, p: &dyn Fn(&str) -> AttributePath, w: &mut HclWriter) {
        w.open("provider", Some(kind), Some(p("")));
        let strings = [
            ("alias", &self.alias),
            ("region", &self.region),
            ("profile", &self.profile),
            ("project", &self.project),
            ("location", &self.location),
            ("subscription_id", &self.subscription_id),
            ("resource_group", &self.resource_group),
            ("api_version", &self.api_version),
            ("channel_server", &self.channel_server),
            ("endpoint", &self.endpoint),
            ("poll_interval", &self.poll_interval),
        ];
        for (name, v) in strings {
            w.string(name, v.as_deref_option(), p(name));
        }
        w.strings("versions", self.versions.as_deref_option(), p("versions"));
        w.bool(
            "simulate",
            self.simulate.as_ref_option().copied(),
            p("simulate"),
        );
        w.number("speed", self.speed.as_ref_option().copied(), p("speed"));
        w.number(
            "requests_per_second",
            self.requests_per_second.as_ref_option().copied(),
            p("requests_per_second"),
        );
        w.close();
    }
}

/// The provider as configured: its blocks as kup HCL, ready to load beside a cluster.
pub struct Configured {
    pub providers: HclWriter,
    /// Provider keys (`eks`, `eks.us`), in the order written.
    pub keys: Vec<String>,
    pub state_dir: PathBuf,
}

impl Configured {
    pub fn new(config: &ProviderConfig, diags: &mut Diagnostics) -> Option<Configured> {
        let mut w = HclWriter::default();
        let mut keys = Vec::new();
        for (kind, blocks) in config.kinds() {
            for (i, b) in blocks.iter().flatten().enumerate() {
                let at = [Step::Attr(kind.into()), Step::Index(i as i64)];
                let p = |name: &str| {
                    let mut s = at.to_vec();
                    if !name.is_empty() {
                        s.push(Step::Attr(name.into()));
                    }
                    path(&s)
                };
                b.write(kind, &p, &mut w);
                keys.push(match b.alias.as_deref_option() {
                    Some(a) => format!("{kind}.{a}"),
                    None => kind.to_string(),
                });
            }
        }
        if let Some(dir) = config.config_dir.as_deref_option() {
            let opts = kup_engine::config::LoadOptions {
                env: std::env::vars().collect(),
                ..Default::default()
            };
            match kup_engine::config::load_dir(std::path::Path::new(dir), &opts) {
                Ok(loaded) => {
                    // Their problems were found at their own lines already; anything the
                    // loader says about them here belongs to `config_dir`.
                    let p = |_: &str| AttributePath::new("config_dir");
                    for spec in &loaded.desired.providers {
                        ProviderBlock::from_spec(spec).write(&spec.kind, &p, &mut w);
                        keys.push(spec.key());
                    }
                }
                Err(d) => {
                    diags.error(
                        format!("The kup configuration in {dir} has errors"),
                        d.render(&[]),
                        AttributePath::new("config_dir"),
                    );
                    return None;
                }
            }
        }
        if keys.is_empty() {
            diags.root_warning(
                "No kup provider block",
                "Add an `eks { region = \"...\" }` (or gke, aks, k3s, rke2, kubeadm) block to `provider \"kup\"`: every kup_cluster names one of them in `kup_provider`.",
            );
        }
        let configured = Configured {
            providers: w,
            keys,
            state_dir: PathBuf::from(
                config
                    .state_dir
                    .as_deref_option()
                    .unwrap_or(".kup/terraform"),
            ),
        };
        // kup's loader checks the blocks now (a cluster is needed for a whole
        // configuration, so its own complaints are left to the resources).
        if let Err(errors) = crate::session::load(&configured.providers, None) {
            let mut any = false;
            for e in errors {
                if let crate::session::LoadError::Provider(at, summary, detail) = e {
                    diags.error(summary, detail, at.unwrap_or_else(AttributePath::root));
                    any = true;
                }
            }
            if any {
                return None;
            }
        }
        Some(configured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_provider_blocks_join_the_terraform_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.kup.hcl"),
            "provider \"eks\" {\n  alias = \"us\"\n  region = \"us-east-1\"\n  poll_interval = \"2s\"\n}\n\ncluster \"a\" {\n  provider = \"eks.us\"\n  version = \"1.30\"\n}\n",
        )
        .unwrap();
        let config = ProviderConfig {
            eks: Value::Value(vec![ProviderBlock {
                region: "eu-west-1".to_string().into(),
                ..Default::default()
            }]),
            config_dir: Value::Value(dir.path().display().to_string()),
            ..Default::default()
        };
        let mut diags = Diagnostics::default();
        let c = Configured::new(&config, &mut diags).expect("configured");
        assert!(diags.errors.is_empty(), "{diags:?}");
        assert_eq!(c.keys, ["eks", "eks.us"]);
        let text = c.providers.text();
        assert!(text.contains("region = \"us-east-1\""), "{text}");
        assert!(text.contains("poll_interval = \"2000ms\""), "{text}");

        // A broken directory is an error at `config_dir`, with kup's file:line:col.
        std::fs::write(
            dir.path().join("main.kup.hcl"),
            "provider \"eks\" {\n  regoin = \"us-east-1\"\n}\n",
        )
        .unwrap();
        let mut diags = Diagnostics::default();
        assert!(Configured::new(&config, &mut diags).is_none());
        assert_eq!(diags.errors[0].attribute, AttributePath::new("config_dir"));
        assert!(
            diags.errors[0].detail.contains("main.kup.hcl:2:3"),
            "{:?}",
            diags.errors[0]
        );
    }
}
