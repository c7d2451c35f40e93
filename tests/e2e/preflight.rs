//! Pre-flight checks in the plan: objects at APIs a hop removes (issue 8, first part).

use crate::harness::*;

const FLOWSCHEMA: &str = "apiVersion: flowcontrol.apiserver.k8s.io/VERSION
kind: FlowSchema
metadata:
  name: batch-jobs
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: web
";

fn cluster(removed_apis: &str) -> String {
    format!(
        r#"cluster "prod" {{
  name    = "prod-eu"
  version = "1.31"
  preflight {{
    manifests    = ["k8s"]
    removed_apis = "{removed_apis}"
  }}
  node_group "general" {{
    max_unavailable = 1
  }}
  node_group "payments" {{
    max_unavailable = 1
  }}
}}
"#
    )
}

#[test]
fn a_manifest_at_a_removed_api_blocks_the_hop_that_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &cluster("block"));
    std::fs::create_dir_all(dir.join("k8s/flow")).unwrap();
    let manifest = dir.join("k8s/flow/flowschema.yaml");
    std::fs::write(&manifest, FLOWSCHEMA.replace("VERSION", "v1beta2")).unwrap();
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains("1 object(s) use APIs removed in 1.29, so the control plane cannot move to 1.29: FlowSchema/batch-jobs: uses flowcontrol.apiserver.k8s.io/v1beta2, removed in 1.29 (found in k8s/flow/flowschema.yaml): move it to flowcontrol.apiserver.k8s.io/v1"),
        "{plan:?}"
    );
    assert!(plan.stderr.contains("removed_apis = \"warn\""), "{plan:?}");

    // warn: planned, with the finding as a warning.
    std::fs::write(
        dir.join("main.kup.hcl"),
        std::fs::read_to_string(dir.join("main.kup.hcl"))
            .unwrap()
            .replace("\"block\"", "\"warn\""),
    )
    .unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.all()
            .contains("warning: FlowSchema/batch-jobs: uses flowcontrol.apiserver.k8s.io/v1beta2, removed in 1.29"),
        "{plan:?}"
    );

    // Migrated: nothing to say.
    std::fs::write(&manifest, FLOWSCHEMA.replace("VERSION", "v1")).unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(!plan.all().contains("batch-jobs"), "{plan:?}");

    // An unreadable manifest is named.
    std::fs::write(dir.join("k8s/broken.yaml"), "kind: [").unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains("preflight manifests: k8s/broken.yaml"),
        "{plan:?}"
    );
}

#[test]
fn the_plan_warns_about_versions_past_or_near_end_of_support() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let plan = kup(&["plan", "-json", dir.to_str().unwrap()]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let warnings = saved["plan"]["clusters"][0]["warnings"].to_string();
    // EKS's calendar: 1.28 left standard support on 2024-11-26 and extended support on
    // 2025-11-26; 1.31 left standard support on 2025-11-26 (both in the past from now on).
    assert!(
        warnings.contains(
            "1.28: the running version is past its end of standard support on EKS (2024-11-26"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "1.31: the target version is past its end of standard support on EKS (2025-11-26"
        ),
        "{warnings}"
    );
}
