//! EKS upgrade insights: ListInsights / DescribeInsight over raw HTTP and through the real
//! aws-sdk-eks, the standard checks for the next minor, a computed kubelet version skew,
//! staged insights, filters, pagination, errors, and insights following a control-plane
//! upgrade.

mod common;

use std::collections::BTreeMap;

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{Category, InsightStatusValue, InsightsFilter};
use common::{start_with, Harness};
use serde_json::{json, Value};

const WORLD: &str = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.31"
  node_group "general" {
    version = "1.31"
  }
  node_group "legacy" {
    version = "1.30"
  }
  addon "kube-proxy" {
    version = "v1.31.3-eksbuild.2"
  }
  insight "0c2f1a3e-8c11-4d2b-9a55-3f1e7b6c9d01" {
    name               = "Deprecated APIs removed in Kubernetes v1.32"
    category           = "UPGRADE_READINESS"
    kubernetes_version = "1.32"
    status             = "ERROR"
    reason             = "Deprecated API usage detected within last 30 days and your cluster is on Kubernetes v1.31."
    description        = "Checks for usage of deprecated APIs that are scheduled for removal in Kubernetes v1.32."
    recommendation     = "Update manifests and API clients to use newer Kubernetes APIs."
    deprecation {
      usage = "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"
      client {
        user_agent            = "kube-state-metrics/v2.10.0"
        requests_last_30_days = 120
        last_request_time     = "2025-10-14T08:00:00Z"
      }
      client {
        user_agent            = "kubectl/v1.27.3"
        requests_last_30_days = 2
      }
    }
    deprecation {
      usage = "/apis/flowcontrol.apiserver.k8s.io/v1beta3/prioritylevelconfigurations"
    }
  }
}
cluster "dev" {
  version = "1.30"
  node_group "ng" {
    version = "1.30"
  }
}
"#;

const STAGED_ID: &str = "0c2f1a3e-8c11-4d2b-9a55-3f1e7b6c9d01";

async fn list(h: &Harness, cluster: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/clusters/{cluster}/insights",
            h.sim.endpoints().eks
        ))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=y",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap())
}

async fn describe(h: &Harness, cluster: &str, id: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/clusters/{cluster}/insights/{id}",
            h.sim.endpoints().eks
        ))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=y",
        )
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let kind = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (code, kind, r.json().await.unwrap())
}

fn by_name(v: &Value) -> BTreeMap<String, Value> {
    v["insights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

#[tokio::test]
async fn standard_and_staged_insights_over_http() {
    let h = start_with(WORLD, "world.hcl", 600.0, "").await;
    let (c, v) = list(&h, "prod-eu", json!({})).await;
    assert_eq!(c, 200, "{v}");
    let all = by_name(&v);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        [
            "Amazon EKS add-on version compatibility",
            "Cluster health issues",
            "Deprecated APIs removed in Kubernetes v1.32",
            "Kube-proxy version skew",
            "Kubelet version skew",
        ]
    );
    for i in all.values() {
        assert_eq!(i["category"], "UPGRADE_READINESS");
        assert_eq!(i["kubernetesVersion"], "1.32");
        assert!(i["lastRefreshTime"].is_f64() || i["lastRefreshTime"].is_u64());
        assert!(i["lastTransitionTime"].is_number());
        // Summaries carry no detail.
        assert!(i.get("recommendation").is_none());
    }
    let skew = &all["Kubelet version skew"];
    assert_eq!(skew["insightStatus"]["status"], "WARNING");
    assert!(skew["insightStatus"]["reason"]
        .as_str()
        .unwrap()
        .contains("legacy (1.30)"));
    let dep = &all["Deprecated APIs removed in Kubernetes v1.32"];
    assert_eq!(dep["id"], STAGED_ID);
    assert_eq!(dep["insightStatus"]["status"], "ERROR");
    assert_eq!(
        all["Cluster health issues"]["insightStatus"]["status"],
        "PASSING"
    );

    // DescribeInsight: the full Insight.
    let (c, _, d) = describe(&h, "prod-eu", STAGED_ID).await;
    assert_eq!(c, 200, "{d}");
    let d = &d["insight"];
    assert_eq!(
        d["recommendation"],
        "Update manifests and API clients to use newer Kubernetes APIs."
    );
    let details = &d["categorySpecificSummary"]["deprecationDetails"];
    assert_eq!(details.as_array().unwrap().len(), 2);
    assert_eq!(
        details[0]["usage"],
        "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"
    );
    // Filled in from the removal table.
    assert_eq!(
        details[0]["replacedWith"],
        "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"
    );
    assert_eq!(details[0]["stopServingVersion"], "1.32");
    assert_eq!(details[0]["startServingReplacementVersion"], "1.29");
    let cs = &details[0]["clientStats"];
    assert_eq!(cs[0]["userAgent"], "kube-state-metrics/v2.10.0");
    assert_eq!(cs[0]["numberOfRequestsLast30Days"], 120);
    assert_eq!(cs[0]["lastRequestTime"], 1760428800.0);
    assert_eq!(cs[1]["userAgent"], "kubectl/v1.27.3");
    let skew_id = skew["id"].as_str().unwrap();
    let (_, _, s) = describe(&h, "prod-eu", skew_id).await;
    let res = &s["insight"]["resources"];
    assert_eq!(res.as_array().unwrap().len(), 1, "{res}");
    assert_eq!(res[0]["insightStatus"]["status"], "WARNING");
    assert!(res[0]["arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:eks:eu-west-1:123456789012:nodegroup/prod-eu/legacy"));
    let addon = &all["Amazon EKS add-on version compatibility"];
    let (_, _, a) = describe(&h, "prod-eu", addon["id"].as_str().unwrap()).await;
    let compat = &a["insight"]["categorySpecificSummary"]["addonCompatibilityDetails"];
    assert_eq!(compat[0]["name"], "kube-proxy");
    assert!(compat[0]["compatibleVersions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_str().unwrap().starts_with("v1.32.")));

    // A cluster without staged insights and without skew: everything PASSING for its next
    // minor, the deprecated-API check listing what 1.31 removes (nothing).
    let (_, v) = list(&h, "dev", json!({})).await;
    let dev = by_name(&v);
    assert_eq!(dev.len(), 5);
    assert!(dev.contains_key("Deprecated APIs removed in Kubernetes v1.31"));
    for i in dev.values() {
        assert_eq!(i["insightStatus"]["status"], "PASSING", "{i}");
        assert_eq!(i["kubernetesVersion"], "1.31");
    }

    // Filters.
    let (_, v) = list(
        &h,
        "prod-eu",
        json!({ "filter": { "statuses": ["ERROR", "WARNING"] } }),
    )
    .await;
    assert_eq!(by_name(&v).len(), 2);
    let (_, v) = list(
        &h,
        "prod-eu",
        json!({ "filter": { "categories": ["MISCONFIGURATION"] } }),
    )
    .await;
    assert_eq!(v["insights"], json!([]));
    let (_, v) = list(
        &h,
        "prod-eu",
        json!({ "filter": { "kubernetesVersions": ["1.32"], "statuses": ["PASSING"] } }),
    )
    .await;
    assert_eq!(by_name(&v).len(), 3);
    let (_, v) = list(
        &h,
        "prod-eu",
        json!({ "filter": { "kubernetesVersions": ["1.33"] } }),
    )
    .await;
    assert_eq!(v["insights"], json!([]));
    // Pagination on `insights`.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let mut body = json!({ "maxResults": 2 });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let (c, v) = list(&h, "prod-eu", body).await;
        assert_eq!(c, 200);
        assert!(v["insights"].as_array().unwrap().len() <= 2);
        seen.extend(by_name(&v).into_keys());
        token = v["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 5);

    // Errors from the model.
    for (body, what) in [
        (json!({ "filter": { "statuses": ["BROKEN"] } }), "BROKEN"),
        (
            json!({ "filter": { "categories": ["UPGRADE"] } }),
            "UPGRADE",
        ),
        (
            json!({ "filter": { "kubernetesVersions": ["one.two"] } }),
            "one.two",
        ),
        (json!({ "maxResults": 0 }), "maxResults"),
        (json!({ "maxResults": 101 }), "maxResults"),
        (json!({ "nextToken": "garbage" }), "nextToken"),
    ] {
        let (c, v) = list(&h, "prod-eu", body.clone()).await;
        assert_eq!(c, 400, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(what), "{body}: {v}");
    }
    let (c, v) = list(&h, "nope", json!({})).await;
    assert_eq!(c, 404, "{v}");
    assert_eq!(v["clusterName"], "nope");
    let (c, kind, _) = describe(&h, "prod-eu", "00000000-0000-0000-0000-000000000000").await;
    assert_eq!(
        (c, kind.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    let (c, kind, _) = describe(&h, "nope", STAGED_ID).await;
    assert_eq!(
        (c, kind.as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn insights_through_the_sdk_and_across_an_upgrade() {
    let h = start_with(WORLD, "world.hcl", 600.0, "").await;
    let out = h
        .eks
        .list_insights()
        .cluster_name("prod-eu")
        .filter(
            InsightsFilter::builder()
                .categories(Category::UpgradeReadiness)
                .statuses(InsightStatusValue::Error)
                .statuses(InsightStatusValue::Warning)
                .build(),
        )
        .send()
        .await
        .expect("list insights");
    let ins = out.insights();
    assert_eq!(ins.len(), 2);
    let staged = ins.iter().find(|i| i.id() == Some(STAGED_ID)).unwrap();
    assert_eq!(staged.kubernetes_version(), Some("1.32"));
    assert_eq!(
        staged.insight_status().and_then(|s| s.status()),
        Some(&InsightStatusValue::Error)
    );
    assert!(staged.last_refresh_time().is_some());
    let d = h
        .eks
        .describe_insight()
        .cluster_name("prod-eu")
        .id(STAGED_ID)
        .send()
        .await
        .expect("describe insight");
    let i = d.insight().unwrap();
    let dep = &i.category_specific_summary().unwrap().deprecation_details()[0];
    assert_eq!(
        dep.usage(),
        Some("/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas")
    );
    assert_eq!(dep.client_stats()[0].number_of_requests_last30_days(), 120);
    let e = h
        .eks
        .describe_insight()
        .cluster_name("prod-eu")
        .id("missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = h
        .eks
        .list_insights()
        .cluster_name("prod-eu")
        .max_results(0)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameter_exception(), "{e:?}");
    assert!(e.message().unwrap_or("").contains("maxResults"));
    // The paginator walks every page.
    let pages: Vec<_> = h
        .eks
        .list_insights()
        .cluster_name("prod-eu")
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pages.len(), 5);

    // Upgrade the control plane: the insights now look at 1.33; the staged 1.32 check is
    // done with; both node groups are behind now.
    let u = h
        .eks
        .update_cluster_version()
        .name("prod-eu")
        .version("1.32")
        .send()
        .await
        .expect("update")
        .update
        .unwrap();
    let u = h.wait_update(u.id().unwrap(), None, None).await;
    assert_eq!(
        u.status(),
        Some(&aws_sdk_eks::types::UpdateStatus::Successful)
    );
    let out = h
        .eks
        .list_insights()
        .cluster_name("prod-eu")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = out.insights().iter().filter_map(|i| i.name()).collect();
    assert!(
        names.contains(&"Deprecated APIs removed in Kubernetes v1.33"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with("v1.32")), "{names:?}");
    assert!(out
        .insights()
        .iter()
        .all(|i| i.kubernetes_version() == Some("1.33")));
    assert!(out.insights().iter().all(|i| i.id() != Some(STAGED_ID)));
    let skew = out
        .insights()
        .iter()
        .find(|i| i.name() == Some("Kubelet version skew"))
        .unwrap();
    let reason = skew.insight_status().unwrap().reason().unwrap();
    assert!(
        reason.contains("general (1.31)") && reason.contains("legacy (1.30)"),
        "{reason}"
    );
    // Staged insights persist in the world file.
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&h.path).unwrap();
    assert!(text.contains(&format!("insight \"{STAGED_ID}\"")), "{text}");
    assert!(text.contains("client {"), "{text}");
}
