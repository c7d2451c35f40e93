//! The user's hooks: run in order with the documented environment; a failing hook stops the
//! apply, and the next apply goes on once it is fixed.

use crate::harness::*;

/// A hook script that logs its environment and fails while `fail` exists next to it.
fn script(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("hook.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$KUP_HOOK $KUP_CLUSTER $KUP_FROM_VERSION $KUP_TO_VERSION ${{KUP_NODE_GROUP:--}} $1\" >> {log}\nif [ -e {fail} ] && [ \"$KUP_HOOK\" = after_control_plane ]; then echo 'smoke test failed: checkout returns 503' >&2; exit 3; fi\n",
            log = dir.join("hooks.log").display(),
            fail = dir.join("fail").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn cluster(script: &std::path::Path) -> String {
    let s = script.display();
    format!(
        r#"cluster "prod" {{
  name    = "prod-eu"
  version = "1.30"
  hook "before_control_plane" {{
    command = ["{s}", "pre"]
  }}
  hook "after_control_plane" {{
    command = ["{s}", "smoke"]
    timeout = "1m"
  }}
  hook "after_node_group" {{
    command = ["{s}", "group"]
  }}
  hook "after_cluster" {{
    command = ["{s}", "done"]
  }}
  node_group "general" {{
    version         = "1.30"
    max_unavailable = 1
  }}
  node_group "payments" {{
    version         = "1.28"
    max_unavailable = 1
  }}
}}
"#
    )
}

#[test]
fn hooks_run_in_order_and_a_failing_one_stops_the_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let s = script(tmp.path());
    let dir = config_dir(tmp.path(), &sim, &cluster(&s));
    let d = dir.to_str().unwrap();
    let log = tmp.path().join("hooks.log");

    // The smoke test fails after the first hop: the apply stops there.
    std::fs::write(tmp.path().join("fail"), "").unwrap();
    let run = kup(&["apply", "-auto-approve", d]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.all().contains("hook after_control_plane")
            && run.all().contains("exited with 3")
            && run
                .all()
                .contains("smoke test failed: checkout returns 503"),
        "{run:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.29");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "before_control_plane prod 1.28 1.29.13 - pre\nafter_control_plane prod 1.28 1.29.13 - smoke\n"
    );

    // Fixed: the next apply goes on from 1.29.
    std::fs::remove_file(tmp.path().join("fail")).unwrap();
    std::fs::remove_file(&log).unwrap();
    let run = kup(&["apply", "-auto-approve", d]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        [
            "before_control_plane prod 1.29 1.30.11 - pre",
            "after_control_plane prod 1.29 1.30.11 - smoke",
            "after_node_group prod 1.28 1.30 general group",
            "after_cluster prod 1.29 1.30.11 - done",
        ],
        "{run:?}"
    );
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.30");
}
