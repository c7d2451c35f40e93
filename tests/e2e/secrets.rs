//! Secrets never leak: a sensitive variable and the cloud credentials are set to marker
//! strings, every command runs with debug logging, and no byte of output and no file kup
//! wrote may contain a marker.

use std::path::Path;

use crate::harness::*;

const TOKEN: &str = "MARKER-token-5b1e9c";
/// Credentials in the environment of every run (the hook inherits them, too).
const CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "MARKER-akid-0c77e1"),
    ("AWS_SECRET_ACCESS_KEY", "MARKER-aws-secret-41d2"),
    ("AWS_SESSION_TOKEN", "MARKER-aws-session-9a3f"),
    ("AZURE_CLIENT_SECRET", "MARKER-azure-secret-7e20"),
    ("GOOGLE_OAUTH_ACCESS_TOKEN", "MARKER-gcp-token-d415"),
];

/// The hook checks it got the real value (so the value reached it, though no file holds
/// it), and when `fail` exists prints its argument and a credential and fails, as a
/// careless script would.
fn hook_script(root: &Path) -> std::path::PathBuf {
    let p = root.join("notify.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nif [ -e {fail} ]; then echo \"sending $1 with $AWS_SECRET_ACCESS_KEY\" >&2; exit 3; fi\n[ \"$1\" = \"Bearer $EXPECTED_TOKEN\" ] || {{ echo 'hook got the wrong argument' >&2; exit 9; }}\n",
            fail = root.join("fail").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn config(script: &Path, target: &str) -> String {
    format!(
        r#"variable "token" {{
  sensitive = true
}}
locals {{
  auth = format("Bearer %s", var.token)
}}
cluster "prod" {{
  name    = "prod-eu"
  version = "{target}"
  hook "before_control_plane" {{
    command = ["{s}", local.auth]
  }}
  node_group "general" {{
    version         = "{target}"
    max_unavailable = 1
  }}
  node_group "payments" {{
    version         = "{target}"
    max_unavailable = 1
  }}
}}
"#,
        s = script.display()
    )
}

/// Every marker that occurs in `text`.
fn markers_in(text: &str) -> Vec<&'static str> {
    std::iter::once(TOKEN)
        .chain(CREDENTIALS.iter().map(|(_, v)| *v))
        .filter(|m| text.contains(m))
        .collect()
}

/// Run kup, keep its output for the final scan, and return it.
fn run<'a>(
    runs: &'a mut Vec<(String, Run)>,
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> &'a Run {
    runs.push((name.to_string(), kup_env(env, args)));
    &runs.last().unwrap().1
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn secrets_appear_nowhere_in_output_logs_or_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let script = hook_script(tmp.path());
    let dir = config_dir(tmp.path(), &sim, &config(&script, "1.29"));
    let d = dir.to_str().unwrap();
    let plan_file = tmp.path().join("plan.bin");
    let p = plan_file.to_str().unwrap();
    // The hook's reference value: kup does not know it is a secret, and never reads it.
    let mut env: Vec<(&str, &str)> = CREDENTIALS.to_vec();
    env.push(("EXPECTED_TOKEN", TOKEN));
    env.push(("KUP_LOG", "debug"));
    let with_token = |level: &'static str| {
        let mut e = env.clone();
        e.push(("KUP_VAR_token", TOKEN));
        e.retain(|(k, _)| *k != "KUP_LOG");
        e.push(("KUP_LOG", level));
        e
    };
    let mut runs: Vec<(String, Run)> = Vec::new();

    // The value given with -var at plan time, logging everything.
    let token_arg = format!("token={TOKEN}");
    let mut trace = env.clone();
    trace.retain(|(k, _)| *k != "KUP_LOG");
    trace.push(("KUP_LOG", "trace"));
    let r = run(
        &mut runs,
        "plan -out",
        &trace,
        &["plan", "-var", &token_arg, "-out", p, d],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(&mut runs, "show -json", &env, &["show", "-json", p]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("(sensitive value)"),
        "the hook's argument shows as (sensitive value): {r:?}"
    );
    let r = run(&mut runs, "show", &env, &["show", p]);
    assert!(
        r.code == 0 && r.stdout.contains("(sensitive value)"),
        "{r:?}"
    );
    for (name, args) in [
        ("plan -json", &["plan", "-json", d][..]),
        ("plan -markdown", &["plan", "-markdown", d]),
        ("graph", &["graph", d]),
    ] {
        let r = run(&mut runs, name, &with_token("debug"), args);
        assert_eq!(r.code, 0, "{r:?}");
    }

    // Applying the saved plan without the value fails before anything changes, saying why.
    let r = run(
        &mut runs,
        "apply without the value",
        &env,
        &["apply", "-json", p],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("sensitive") && r.all().contains("token"),
        "{r:?}"
    );
    assert!(
        sim.mutations().is_empty(),
        "nothing ran: {:?}",
        sim.mutations()
    );

    // Given again with -var, the hook gets the real value (it checks) and the apply
    // completes.
    let r = run(
        &mut runs,
        "apply -json",
        &env,
        &["apply", "-json", "-var", &token_arg, p],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.29");
    let r = run(
        &mut runs,
        "drift -json",
        &with_token("debug"),
        &["drift", "-json", d],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(
        &mut runs,
        "check -json",
        &with_token("debug"),
        &["check", "-json", d],
    );
    // 3: warnings (1.29 is past its support date), which is not what this test is about.
    assert!([0, 3].contains(&r.code), "{r:?}");

    // A failing hook that prints its secret argument and a credential: the error, the
    // events and the journal carry it redacted.
    std::fs::write(dir.join("main.kup.hcl"), {
        let text = std::fs::read_to_string(dir.join("main.kup.hcl")).unwrap();
        text.replace("\"1.29\"", "\"1.30\"")
    })
    .unwrap();
    std::fs::write(tmp.path().join("fail"), "").unwrap();
    let r = run(
        &mut runs,
        "failing apply",
        &with_token("debug"),
        &["apply", "-json", "-auto-approve", d],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all()
            .contains("sending (sensitive value) with (sensitive value)"),
        "the hook's output is shown, redacted: {r:?}"
    );
    let journal = std::fs::read_to_string(journal_path(&dir)).unwrap();
    assert!(
        journal.contains("sending (sensitive value) with (sensitive value)"),
        "{journal}"
    );

    for (name, r) in &runs {
        let found = markers_in(&r.all());
        assert!(found.is_empty(), "`{name}` printed {found:?}:\n{r:?}");
    }
    assert!(
        runs.iter().any(|(_, r)| r.stderr.contains("DEBUG")),
        "debug logging was on"
    );
    let mut files = Vec::new();
    files_under(tmp.path(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("kup.state.json")));
    assert!(files.iter().any(|f| f.ends_with("kup.state.json.journal")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let found = markers_in(&String::from_utf8_lossy(&bytes));
        assert!(found.is_empty(), "{} holds {found:?}", f.display());
    }
}
