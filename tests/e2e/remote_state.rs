//! `backend "s3"`: the state, its backup and its journal in an S3 bucket, the lock in a
//! DynamoDB table, against moto's S3/DynamoDB server on 127.0.0.1 (PyPI `moto[server]`;
//! the tests print SKIPPED without it) and the simulator as the cluster provider.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::harness::*;

const BUCKET: &str = "team-state";
const KEY: &str = "prod/kup.state.json";
const TABLE: &str = "kup-locks";

/// Credentials for moto (it accepts any), and no shared config or instance metadata, so
/// the default chain finds exactly these.
const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
    ("AWS_SECRET_ACCESS_KEY", "secret"),
    ("AWS_CONFIG_FILE", "/nonexistent/kup-test-aws-config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/kup-test-aws-credentials",
    ),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// moto's server, with a bucket and a lock table.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    /// None (after printing SKIPPED) when moto is not installed.
    fn start(test: &str) -> Option<Moto> {
        let has_moto = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_moto {
            eprintln!("SKIPPED {test}: moto's server is not installed (python3 -m pip install 'moto[server]')");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("moto's server to answer", || {
            http().get(format!("{}/moto-api/", moto.url)).send().is_ok()
        });
        let created = moto
            .s3(reqwest::Method::PUT, BUCKET)
            .header("Content-Type", "application/xml")
            .body("<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>")
            .send()
            .unwrap();
        assert!(created.status().is_success(), "{created:?}");
        moto.dynamodb(
            "CreateTable",
            json!({
                "TableName": TABLE,
                "AttributeDefinitions": [{"AttributeName": "LockID", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "LockID", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        );
        Some(moto)
    }

    /// moto tells the services on its one port apart by the signing scope.
    fn auth(service: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=0")
    }

    fn s3(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        http()
            .request(method, format!("{}/{path}", self.url))
            .header("Authorization", Self::auth("s3"))
    }

    fn dynamodb(&self, action: &str, body: Value) -> Value {
        let r = http()
            .post(&self.url)
            .header("Authorization", Self::auth("dynamodb"))
            .header("X-Amz-Target", format!("DynamoDB_20120810.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{action}: {r:?}");
        r.json().unwrap()
    }

    /// An object's bytes, or None when there is none.
    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let r = self
            .s3(reqwest::Method::GET, &format!("{BUCKET}/{key}"))
            .send()
            .unwrap();
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(r.status().is_success(), "GET {key}: {r:?}");
        Some(r.bytes().unwrap().to_vec())
    }

    /// The lock items in the table: LockID → the holder (`Info` parsed).
    fn locks(&self) -> BTreeMap<String, Value> {
        let scan = self.dynamodb("Scan", json!({ "TableName": TABLE }));
        scan["Items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|item| {
                Some((
                    item["LockID"]["S"].as_str().unwrap().to_string(),
                    serde_json::from_str(item["Info"]["S"].as_str()?).unwrap(),
                ))
            })
            .collect()
    }

    /// The state's digest item (`BUCKET/KEY-md5`), as kup recorded it.
    fn digest(&self) -> Option<String> {
        let got = self.dynamodb(
            "GetItem",
            json!({ "TableName": TABLE, "Key": {"LockID": {"S": format!("{BUCKET}/{KEY}-md5")}} }),
        );
        got["Item"]["Digest"]["S"].as_str().map(str::to_string)
    }

    fn set_digest(&self, digest: &str) {
        self.dynamodb(
            "PutItem",
            json!({ "TableName": TABLE, "Item": {
                "LockID": {"S": format!("{BUCKET}/{KEY}-md5")},
                "Digest": {"S": digest},
            }}),
        );
    }

    /// Replace an object, as `aws s3 cp` would.
    fn put_object(&self, key: &str, bytes: &[u8]) {
        let put = self
            .s3(reqwest::Method::PUT, &format!("{BUCKET}/{key}"))
            .header("Content-Type", "application/json")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert!(put.status().is_success(), "{put:?}");
    }

    fn backend_block(&self) -> String {
        format!(
            "backend \"s3\" {{\n  bucket         = \"{BUCKET}\"\n  key            = \"{KEY}\"\n  region         = \"eu-west-1\"\n  endpoint       = \"{}\"\n  dynamodb_table = \"{TABLE}\"\n}}\n\n",
            self.url
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kup_aws(args: &[&str]) -> Run {
    kup_env(AWS_ENV, args)
}

/// Parse `bytes` as kup state through kup's own loader, which checks the checksum.
fn checked_state(bytes: &[u8]) -> kup_engine::state::StateFile {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("state.json");
    std::fs::write(&p, bytes).unwrap();
    kup_engine::state::StateFile::load(&p)
        .unwrap_or_else(|e| panic!("the remote state does not check out: {e}"))
        .unwrap()
}

/// A second configuration directory with the same files: another machine's checkout.
fn another_checkout(root: &Path, dir: &Path) -> PathBuf {
    let other = root.join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(dir.join("main.kup.hcl"), other.join("main.kup.hcl")).unwrap();
    other
}

#[test]
fn remote_state_apply_writes_the_bucket_and_state_commands_read_it() {
    let Some(moto) = Moto::start("remote_state_apply_writes_the_bucket_and_state_commands_read_it")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    // The configuration starts out with local state.
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();
    let local = kup_aws(&["apply", "-auto-approve", d]);
    assert_eq!(local.code, 0, "{local:?}");
    let local_state = std::fs::read(state_path(&dir)).unwrap();
    let before = checked_state(&local_state);

    // It moves to S3: while the bucket holds no state, the local one is not orphaned.
    let body = format!("{}{}", moto.backend_block(), one_cluster("1.30"));
    config_dir(tmp.path(), &sim, &body);
    let refused = kup_aws(&["plan", d]);
    assert_eq!(refused.code, 1, "{refused:?}");
    for want in [
        format!(
            "`aws s3 cp {} s3://{BUCKET}/{KEY}`",
            state_path(&dir).display()
        ),
        format!("lineage {}, serial {}", before.lineage, before.serial),
    ] {
        assert!(
            refused.stderr.contains(&want),
            "missing {want:?}: {refused:?}"
        );
    }
    // Carried over as the message says (the aws CLI's upload, here over moto's API).
    moto.put_object(KEY, &local_state);
    assert_eq!(
        moto.digest(),
        None,
        "a copy by hand records no digest, and is read"
    );

    // A saved plan finds the state through the backend block of the directory it was
    // made in.
    let plan_file = tmp.path().join("upgrade.kup");
    let plan = kup_aws(&["plan", "-out", plan_file.to_str().unwrap(), d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert_eq!(
        moto.object(KEY),
        Some(local_state.clone()),
        "a plan writes no state"
    );
    let apply = kup_aws(&["apply", plan_file.to_str().unwrap()]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains("Apply complete!"), "{apply:?}");

    // The state is in the bucket, checksum intact, its history carried on; the local
    // file is left as it was.
    let bytes = moto.object(KEY).expect("the state object");
    let state = checked_state(&bytes);
    assert_eq!(
        (state.lineage.as_str(), state.serial),
        (before.lineage.as_str(), before.serial + 1)
    );
    assert_eq!(
        state.clusters["cluster.prod"].desired.version.to_string(),
        "1.30"
    );
    assert_eq!(std::fs::read(state_path(&dir)).unwrap(), local_state);
    // Stored with the SHA-256 the SDK sent and S3 checked.
    let head = moto
        .s3(reqwest::Method::HEAD, &format!("{BUCKET}/{KEY}"))
        .header("x-amz-checksum-mode", "ENABLED")
        .send()
        .unwrap();
    let stored = head
        .headers()
        .get("x-amz-checksum-sha256")
        .map(|v| v.to_str().unwrap().to_string());
    let digest = hex::decode(kup_engine::plan::sha256_hex(&bytes)).unwrap();
    use base64::Engine as _;
    assert_eq!(
        stored,
        Some(base64::engine::general_purpose::STANDARD.encode(digest)),
        "{head:?}"
    );
    // The journal went along, and the lock was released.
    let journal = String::from_utf8(moto.object(&format!("{KEY}.journal")).unwrap()).unwrap();
    assert!(journal.contains("\"outcome\":\"completed\""), "{journal}");
    assert!(moto.locks().is_empty(), "{:?}", moto.locks());

    let again = kup_aws(&["plan", d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");
    // A second write keeps the first as KEY.backup.
    let first_digest = moto.digest().expect("kup records the state's digest");
    let again = kup_aws(&["apply", "-auto-approve", d]);
    assert_eq!(again.code, 0, "{again:?}");
    let now_bytes = moto.object(KEY).unwrap();
    let backup_bytes = moto.object(&format!("{KEY}.backup")).unwrap();
    let (now, backup) = (checked_state(&now_bytes), checked_state(&backup_bytes));
    assert_eq!(
        (backup.serial + 1, &backup.lineage),
        (now.serial, &now.lineage)
    );
    assert_ne!(moto.digest().unwrap(), first_digest);

    // S3 serving the previous copy (as an eventually consistent store may) is noticed
    // through the digest, not trusted: it would make the next write look current.
    moto.put_object(KEY, &backup_bytes);
    let stale = kup_aws(&["state", "list", d]);
    assert_eq!(stale.code, 1, "{stale:?}");
    assert!(
        stale
            .stderr
            .contains("does not match the digest kup recorded")
            && stale.stderr.contains(&format!("LockID {BUCKET}/{KEY}-md5")),
        "{stale:?}"
    );
    // A write that stored the state and died before its digest: the digest is the
    // backup's, and the newer state is read.
    moto.put_object(KEY, &now_bytes);
    moto.set_digest(&first_digest);
    let list = kup_aws(&["state", "list", d]);
    assert_eq!(list.code, 0, "{list:?}");

    // Read from another checkout: the state commands find it through the backend block.
    let other = another_checkout(tmp.path(), &dir);
    let o = other.to_str().unwrap();
    let list = kup_aws(&["state", "list", o]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.stdout
            .lines()
            .any(|l| l == "cluster.prod.node_group.general"),
        "{list:?}"
    );
    let show = kup_aws(&[
        "state",
        "show",
        "cluster.prod.node_group.payments",
        "--dir",
        o,
    ]);
    assert_eq!(show.code, 0, "{show:?}");
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(shown["observed"]["version"], "1.30", "{shown}");
    let missing = kup_aws(&["state", "show", "cluster.nope", "--dir", o]);
    assert!(
        missing.stderr.contains(&format!("s3://{BUCKET}/{KEY}")),
        "{missing:?}"
    );
}

#[test]
fn concurrent_applies_on_one_remote_state_one_wins_the_other_names_the_holder() {
    let Some(moto) =
        Moto::start("concurrent_applies_on_one_remote_state_one_wins_the_other_names_the_holder")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The control-plane update hangs until the fault is cleared: the winner holds the
    // lock at least until then.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, Some("hang=prod-eu"));
    let body = format!("{}{}", moto.backend_block(), one_cluster("1.29"));
    let dir = config_dir(tmp.path(), &sim, &body);
    let other = another_checkout(tmp.path(), &dir);
    // Both race for the lock; exactly one gets it, and the other gives up at once.
    let mut racers = [
        spawn_kup_env(AWS_ENV, &["apply", "-auto-approve", dir.to_str().unwrap()]),
        spawn_kup_env(
            AWS_ENV,
            &["apply", "-auto-approve", other.to_str().unwrap()],
        ),
    ];
    let pids = [racers[0].id(), racers[1].id()];
    let mut lost = None;
    wait_until("one apply to give up", || {
        lost = (0..2).find(|&i| racers[i].try_wait().unwrap().is_some());
        lost.is_some()
    });
    let lost = lost.unwrap();
    let [a, b] = racers;
    let (mut winner, losing) = if lost == 0 { (b, a) } else { (a, b) };
    let out = losing.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The holder, as DynamoDB has it: the other process.
    let locks = moto.locks();
    let holder = &locks[&format!("{BUCKET}/{KEY}")];
    assert_eq!(holder["pid"], pids[1 - lost], "{holder}");
    assert_eq!(holder["operation"], "apply");
    let id = holder["id"].as_str().unwrap();
    for want in [
        "the state is locked: apply by".to_string(),
        format!(
            "on {} (pid {})",
            holder["host"].as_str().unwrap(),
            pids[1 - lost]
        ),
        format!("kup force-unlock {id}"),
        format!("DynamoDB table {TABLE}, LockID {BUCKET}/{KEY}"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    // Waiting for the lock retries until the deadline, then names the holder the same way.
    let waited = kup_aws(&["plan", "-lock-timeout", "1s", dir.to_str().unwrap()]);
    assert_eq!(waited.code, 1, "{waited:?}");
    assert!(
        waited.stderr.contains(&format!("kup force-unlock {id}")),
        "{waited:?}"
    );

    sim.clear_faults();
    let won = winner.wait().unwrap();
    assert_eq!(won.code(), Some(0));
    assert!(moto.locks().is_empty(), "the winner released the lock");
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.29");
    let hops = sim
        .mutations()
        .iter()
        .filter(|m| m["op"] == "UpdateClusterVersion")
        .count();
    assert_eq!(hops, 1, "only the winner upgraded");
}

#[test]
fn sigkilled_holder_leaves_its_lock_force_unlock_clears_it_and_another_machine_resumes() {
    let Some(moto) = Moto::start(
        "sigkilled_holder_leaves_its_lock_force_unlock_clears_it_and_another_machine_resumes",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Slow enough that the kill lands mid-apply, as in crash.rs.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 400.0, None);
    let body = format!("{}{}", moto.backend_block(), one_cluster("1.31"));
    let dir = config_dir(tmp.path(), &sim, &body);
    let planned = kup_aws(&["plan", "-json", dir.to_str().unwrap()]);
    assert_eq!(planned.code, 0, "{planned:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&planned.stdout).unwrap();
    let steps = provider_steps(&saved);

    let mut child = spawn_kup_env(AWS_ENV, &["apply", "-auto-approve", dir.to_str().unwrap()]);
    let pid = child.id();
    wait_until("two updates", || {
        sim.mutations().len() >= 2 || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    child.wait().unwrap();
    let done_before = sim.mutations().len();
    assert!(
        done_before < steps,
        "killed mid-apply ({done_before} of {steps})"
    );

    // The dead holder's lock stays in DynamoDB; its journal is in the bucket.
    let locks = moto.locks();
    let holder = &locks[&format!("{BUCKET}/{KEY}")];
    assert_eq!(holder["pid"], pid, "{holder}");
    let id = holder["id"].as_str().unwrap().to_string();
    let journal = String::from_utf8(moto.object(&format!("{KEY}.journal")).unwrap()).unwrap();
    assert!(journal.contains("operation_started"), "{journal}");

    // Another machine: a fresh checkout with no .kup/ at all.
    let other = another_checkout(tmp.path(), &dir);
    let o = other.to_str().unwrap();
    let blocked = kup_aws(&["apply", "-auto-approve", o]);
    assert_eq!(blocked.code, 1, "{blocked:?}");
    for want in [
        format!("(pid {pid} (that process is no longer running))"),
        format!("kup force-unlock {id}"),
        "a kup that crashed or was killed leaves its lock there".to_string(),
    ] {
        assert!(
            blocked.stderr.contains(&want),
            "missing {want:?}: {blocked:?}"
        );
    }
    let wrong = kup_aws(&["force-unlock", "0123abcd", o]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains(&format!("locked with ID {id}, not 0123abcd")),
        "{wrong:?}"
    );
    assert_eq!(moto.locks().len(), 1, "a wrong id removes nothing");
    let unlocked = kup_aws(&["force-unlock", &id, o]);
    assert_eq!(unlocked.code, 0, "{unlocked:?}");
    assert!(
        unlocked.stdout.contains(&format!("Removed the lock {id}")),
        "{unlocked:?}"
    );
    assert!(moto.locks().is_empty());

    let resumed = kup_aws(&["apply", "-auto-approve", o]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(
        resumed
            .stdout
            .contains("Resuming the apply that did not finish"),
        "{resumed:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.31");
    assert_eq!(node_group_version(&w, "prod-eu", "payments"), "1.31");
    // One accepted mutation per planned provider step, none refused as a duplicate.
    assert_eq!(sim.mutations().len(), steps, "{:#?}", sim.mutations());
    let refused = sim.refused_in_use();
    assert_eq!(
        refused, 0,
        "the resumed apply re-issued an update in flight"
    );
    let state = checked_state(&moto.object(KEY).unwrap());
    assert_eq!(
        state.clusters["cluster.prod"].observed.version.to_string(),
        "1.31"
    );
}

/// No server needed: the configuration is refused before anything is contacted.
#[test]
fn bad_backend_configuration_is_refused_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let write = |backend: &str| {
        std::fs::write(
            dir.join("main.kup.hcl"),
            format!(
                "provider \"eks\" {{\n  region = \"eu-west-1\"\n}}\n\n{backend}\n{}",
                one_cluster("1.29")
            ),
        )
        .unwrap()
    };
    let s3 = "backend \"s3\" {\n  bucket         = \"b\"\n  key            = \"k\"\n  endpoint       = \"http://127.0.0.1:9\"\n  dynamodb_table = \"t\"\n}\n";

    write(&s3.replace("  bucket         = \"b\"\n", ""));
    let r = kup(&["validate", d]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all()
            .contains("Missing required attribute \"bucket\" in backend \"s3\"")
            && r.all().contains("main.kup.hcl:5:1"),
        "{r:?}"
    );
    // Commands that read only the backend block report it the same way.
    let r = kup(&["state", "list", d]);
    assert!(r.all().contains("main.kup.hcl:5:1"), "{r:?}");

    write(&s3.replace("dynamodb_table", "dynamodb_tabel"));
    let r = kup(&["validate", d]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("Unsupported attribute") && r.all().contains("main.kup.hcl:9:3"),
        "{r:?}"
    );
    assert!(r.all().contains("did you mean \"dynamodb_table\""), "{r:?}");

    write(s3);
    let r = kup(&["plan", "-state", "/tmp/elsewhere.json", d]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("-state /tmp/elsewhere.json cannot be used with the backend \"s3\" block at")
            && r.stderr
                .contains("main.kup.hcl:5:1: the state lives in s3://b/k"),
        "{r:?}"
    );
    let r = kup(&["force-unlock", "abc", "-state", "/tmp/elsewhere.json", d]);
    assert!(
        r.stderr
            .contains("cannot be used with the backend \"s3\" block"),
        "{r:?}"
    );

    // backend "local" puts the state where its path says (relative to the directory).
    write("backend \"local\" {\n  path = \"state/prod.json\"\n}\n");
    let r = kup(&["state", "list", d]);
    assert!(
        r.stderr.contains(&format!(
            "no state at {}",
            dir.join("state/prod.json").display()
        )),
        "{r:?}"
    );
}
