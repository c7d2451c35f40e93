//! `data "kup_versions"`: the control-plane versions a cluster's provider offers now, with
//! the end of support kup plans against.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics};

use crate::provider_config::attr;
use crate::session::Session;
use crate::Shared;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfferedVersion {
    pub version: String,
    /// `YYYY-MM-DD`, empty when kup knows no date.
    pub end_of_support: String,
    /// What the date is (`end of standard support on EKS`, `upstream end of life`).
    pub support: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VersionsState {
    pub cluster: Value<String>,
    pub kup_provider: Value<String>,
    pub region: Value<String>,
    pub current_version: Value<String>,
    pub default_version: Value<String>,
    pub versions: Value<Vec<OfferedVersion>>,
}

pub struct VersionsDataSource {
    pub configured: Shared,
}

#[async_trait]
impl DataSource for VersionsDataSource {
    type State<'a> = VersionsState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let offered = AttributeType::Object(
            [
                ("version".to_string(), AttributeType::String),
                ("end_of_support".to_string(), AttributeType::String),
                ("support".to_string(), AttributeType::String),
            ]
            .into_iter()
            .collect(),
        );
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain(
                    "The control-plane versions a cluster's provider offers now, oldest first, with the end of support kup plans against.",
                ),
                attributes: [
                    ("cluster", attr("string", "The cluster's name at the provider (the provider offers versions per cluster).", AttributeConstraint::Required)),
                    ("kup_provider", attr("string", "The provider block (`eks`, `eks.ALIAS`); optional when one is configured.", AttributeConstraint::Optional)),
                    ("region", attr("string", "Region override (default: the provider block's).", AttributeConstraint::Optional)),
                    ("current_version", attr("string", "The cluster's control-plane version.", AttributeConstraint::Computed)),
                    ("default_version", attr("string", "The version the provider gives new clusters, when it says.", AttributeConstraint::Computed)),
                    (
                        "versions",
                        Attribute {
                            attr_type: AttributeType::List(Box::new(offered)),
                            description: Description::plain("`{ version, end_of_support (YYYY-MM-DD or empty), support (what the date is) }` per offered version."),
                            constraint: AttributeConstraint::Computed,
                            ..Default::default()
                        },
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: VersionsState,
        _meta: ValueEmpty,
    ) -> Option<VersionsState> {
        // A cluster block at the cluster's current version: loading it is how kup resolves
        // the provider block, and refreshing it is how the provider says what it offers.
        let cluster = crate::cluster::ClusterState {
            name: config.cluster.clone(),
            kup_provider: config.kup_provider.clone(),
            region: config.region.clone(),
            version: Value::Value("latest".into()),
            ..Default::default()
        };
        let configured = self.configured.read().unwrap().clone();
        let Some(configured) = configured else {
            diags.root_error_short("The kup provider is not configured");
            return None;
        };
        let (loaded, _) = crate::cluster::ClusterResource::load(&configured, &cluster, diags)?;
        let session = match Session::connect(&loaded.loaded).await {
            Ok(s) => s,
            Err(e) => {
                diags.error(
                    "kup cannot reach the provider",
                    e,
                    AttributePath::new("kup_provider"),
                );
                return None;
            }
        };
        let spec = session.cluster().clone();
        let actual = match session.handle(&spec).await {
            Ok(h) => session.refresh(&h).await,
            Err(e) => Err(e),
        };
        let actual = match actual {
            Ok(a) => a,
            Err(e) => {
                diags.error(
                    format!("kup cannot read cluster {}", spec.name),
                    e,
                    AttributePath::new("cluster"),
                );
                return None;
            }
        };
        let kind = session
            .desired
            .provider(&spec.provider)
            .map(|p| p.kind.clone())
            .unwrap_or_default();
        let mut offered = actual.offered_versions.clone();
        offered.sort();
        let mut state = config;
        state.current_version = Value::Value(actual.version.to_string());
        state.default_version = actual
            .default_version
            .as_ref()
            .map(|v| v.to_string())
            .into();
        state.versions = Value::Value(
            offered
                .iter()
                .map(|v| {
                    let eos = kup_engine::support::end_of_support(&kind, v.minor());
                    OfferedVersion {
                        version: v.to_string(),
                        end_of_support: eos
                            .as_ref()
                            .map(|(d, _)| d.to_string())
                            .unwrap_or_default(),
                        support: eos.map(|(_, what)| what).unwrap_or_default(),
                    }
                })
                .collect(),
        );
        Some(state)
    }
}
