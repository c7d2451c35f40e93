use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::model::{AddonVersionReq, Strategy, Unavailable};
use crate::version::Version;

const FULL: &str = include_str!("testdata/full.kup.hcl");
const WORLD: &str = include_str!("testdata/world.hcl");

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn load_files(
    files: &[(&str, &str)],
    opts: &LoadOptions,
) -> (tempfile::TempDir, Result<Loaded, Diagnostics>) {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), files);
    let r = load_dir(tmp.path(), opts);
    (tmp, r)
}

fn ok(files: &[(&str, &str)]) -> Loaded {
    let (_t, r) = load_files(files, &LoadOptions::default());
    match r {
        Ok(l) => l,
        Err(d) => panic!("expected success, got:\n{d}"),
    }
}

fn errors_with(files: &[(&str, &str)], opts: &LoadOptions) -> Vec<Diagnostic> {
    let (_t, r) = load_files(files, opts);
    match r {
        Ok(_) => panic!("expected errors, config loaded"),
        Err(d) => d.0,
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    errors_with(files, &LoadOptions::default())
}

/// The (line, col) of the `nth` (0-based) occurrence of `needle` in `src`, computed by hand.
fn pos(src: &str, needle: &str, nth: usize) -> (usize, usize) {
    let off = src
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in source"))
        .0;
    let before = &src[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// The single diagnostic whose summary contains `summary`; asserts its file and line:col.
fn expect(diags: &[Diagnostic], summary: &str, file: &str, at: (usize, usize)) -> Diagnostic {
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.summary.contains(summary))
        .collect();
    assert!(
        found.len() == 1,
        "expected exactly one diagnostic with summary containing {summary:?}, got:\n{}",
        diags
            .iter()
            .map(|d| format!("{d}"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let d = found[0].clone();
    let loc = d
        .loc
        .clone()
        .unwrap_or_else(|| panic!("no location on {d}"));
    assert!(
        loc.file.ends_with(file),
        "file {} does not end with {file}",
        loc.file
    );
    assert_eq!(
        (loc.line, loc.col),
        at,
        "wrong position for {summary:?}:\n{d}"
    );
    assert_eq!(d.severity, Severity::Error);
    d
}

fn hint(d: &Diagnostic) -> &str {
    d.hint.as_deref().unwrap_or("")
}

const PROVIDER: &str = "provider \"eks\" {\n  region = \"eu-west-1\"\n}\n";

fn with_provider(rest: &str) -> String {
    format!("{PROVIDER}{rest}")
}

// ---------------------------------------------------------------------------------------
// the happy path
// ---------------------------------------------------------------------------------------

#[test]
fn full_config_round_trips_into_desired() {
    let l = ok(&[("main.kup.hcl", FULL), ("world.hcl", WORLD)]);
    let d = &l.desired;
    assert!(l.dir.is_absolute());
    assert_eq!(l.config_hash.len(), 64);
    assert_eq!(l.sources.len(), 1);
    assert!(l.sources[0].0.ends_with("main.kup.hcl"));

    assert_eq!(d.providers.len(), 2);
    let eks = d.provider("eks").unwrap();
    assert_eq!(eks.region.as_deref(), Some("eu-west-1"));
    assert_eq!(eks.profile.as_deref(), Some("prod"));
    assert!(eks.simulate);
    assert_eq!(eks.speed, Some(600.0));
    assert_eq!(eks.poll_interval, Some(Duration::from_secs(15)));
    let world = PathBuf::from(eks.world.as_deref().unwrap());
    assert!(world.is_absolute());
    assert_eq!(world, l.dir.join("world.hcl"));
    let o = eks.origin.as_ref().unwrap();
    assert_eq!((o.line, o.col), pos(FULL, "provider \"eks\" {", 0));
    let us = d.provider("eks.us").unwrap();
    assert_eq!(us.alias.as_deref(), Some("us"));
    assert_eq!(us.region.as_deref(), Some("us-east-1"));
    assert_eq!(us.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
    assert!(!us.simulate);
    assert_eq!(us.world, None);

    assert_eq!(d.clusters.len(), 2);
    let prod = d.cluster("prod").unwrap();
    assert_eq!(prod.provider, "eks");
    assert_eq!(prod.name, "prod-2-eu");
    assert_eq!(prod.version, Version::new(1, 31, None));
    assert_eq!(prod.kubeconfig.as_deref(), Some("~/.kube/config"));
    assert_eq!(prod.context.as_deref(), Some("prod"));
    assert_eq!(prod.parallel_node_groups, 2);
    assert_eq!(prod.region, None);
    let v = prod.version_origin.as_ref().unwrap();
    let (l, c) = pos(FULL, "version              = var.target", 0);
    assert_eq!((v.line, v.col), (l, c + 23));
    assert_eq!(
        prod.addons
            .iter()
            .map(|a| (a.name.as_str(), a.version.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("coredns", AddonVersionReq::Compatible),
            ("kube-proxy", AddonVersionReq::Latest),
            (
                "vpc-cni",
                AddonVersionReq::Exact("v1.18.3-eksbuild.1".into())
            ),
        ]
    );
    let general = prod.node_group("general").unwrap();
    assert_eq!(general.version, Version::new(1, 31, None));
    assert_eq!(
        general.strategy,
        Strategy::Rolling {
            max_unavailable: Unavailable::Percent(25),
            max_surge: Some(Unavailable::Count(2)),
        }
    );
    assert_eq!(general.drain.timeout, Some(Duration::from_secs(600)));
    assert_eq!(general.drain.grace_period, Some(Duration::from_secs(30)));
    assert!(general.drain.delete_emptydir_data);
    assert!(!general.drain.force);
    assert_eq!(general.drain.pod_selector.as_deref(), Some("app!=batch"));
    assert_eq!(
        general.drain.skip_wait_for_delete_timeout,
        Some(Duration::from_secs(60))
    );
    assert!(!general.drain.disable_eviction);
    let o = general.origin.as_ref().unwrap();
    assert_eq!((o.line, o.col), pos(FULL, "node_group \"general\"", 0));
    let payments = prod.node_group("payments").unwrap();
    assert_eq!(payments.version, Version::new(1, 29, None));
    assert_eq!(
        payments.strategy,
        Strategy::BlueGreen {
            max_unavailable: Unavailable::Count(3),
            soak: Duration::from_secs(5400),
            batch_soak: Duration::from_secs(300),
            native: None,
            complete_when_healthy_for: None,
        }
    );
    assert_eq!(payments.drain, Default::default());

    let us = d.cluster("us").unwrap();
    assert_eq!(us.provider, "eks.us");
    assert_eq!(us.name, "us");
    assert_eq!(us.version, Version::new(1, 30, Some(4)));
    assert_eq!(us.parallel_node_groups, 1);
    let g = us.node_group("default").unwrap();
    assert_eq!(
        g.version,
        Version::new(1, 30, Some(4)),
        "node group defaults to the cluster version"
    );
    assert_eq!(
        g.strategy,
        Strategy::Rolling {
            max_unavailable: Unavailable::Count(1),
            max_surge: None
        }
    );
}

#[test]
fn single_provider_is_the_default_and_blue_green_defaults() {
    let src = with_provider(
        "cluster \"c\" {\n  version = \"1.30\"\n  node_group \"a\" {\n    strategy = \"blue_green\"\n  }\n}\n",
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    let c = l.desired.cluster("c").unwrap();
    assert_eq!(c.provider, "eks");
    assert_eq!(
        c.node_groups[0].strategy,
        Strategy::BlueGreen {
            max_unavailable: Unavailable::Count(1),
            soak: Duration::from_secs(900),
            batch_soak: Duration::ZERO,
            native: None,
            complete_when_healthy_for: None,
        }
    );
}

#[test]
fn files_are_read_in_sorted_order_and_may_share_declarations() {
    let l = ok(&[
        ("b.kup.hcl", "cluster \"one\" {\n  version = var.v\n}\n"),
        (
            "a.kup.hcl",
            &with_provider("variable \"v\" {\n  default = \"1.29\"\n}\n"),
        ),
        ("notes.hcl", "this is not read {"),
    ]);
    assert_eq!(l.sources.len(), 2);
    assert!(l.sources[0].0.ends_with("a.kup.hcl"));
    assert!(l.sources[1].0.ends_with("b.kup.hcl"));
    assert_eq!(l.desired.clusters[0].version, Version::new(1, 29, None));
}

#[test]
fn functions_behave_like_terraform() {
    let src = with_provider(
        r#"locals {
  a = join(",", ["x", "y"], ["z"])
  b = concat(["a"], ["b", "c"])
  c = contains(local.b, "c") ? "yes" : "no"
  d = lookup({ k = "v" }, "missing", "dflt")
  e = coalesce("", "first")
  f = min(3, 1, 2) + max(4, 9)
  g = tostring(5)
  h = tonumber("1.5") * 2
  i = replace("a-b-c", "-", "_")
  j = replace("v1.31.2", "/^v/", "")
  k = trimprefix("v1.31", "v")
  l = trimsuffix("1.31.0", ".0")
  m = format("%s/%d/%v%%", "x", 3, true)
  n = regex("^(\\d+)\\.(\\d+)", "1.31.2")
  o = regex("(?P<major>\\d+)", "v12")
  p = can(regex("^z", "abc"))
  q = can(local.b[10])
  r = length("héllo")
}
cluster "c" {
  version = "1.30"
  name    = join("|", [local.a, join(".", local.b), local.c, local.d, local.e, tostring(local.f), local.g, tostring(local.h), local.i, local.j, local.k, local.l, local.m, join("+", local.n), local.o.major, tostring(local.p), tostring(local.q), tostring(local.r)])
}
"#,
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    assert_eq!(
        l.desired.clusters[0].name,
        "x,y,z|a.b.c|yes|dflt|first|10|5|3|a_b_c|1.31.2|1.31|1.31|x/3/true%|1+31|12|false|false|5"
    );
}

// ---------------------------------------------------------------------------------------
// variables: precedence and sources
// ---------------------------------------------------------------------------------------

#[test]
fn variable_precedence_default_env_kupvars_auto_varfile_cli() {
    let mut cfg = String::from(PROVIDER);
    for i in 1..=8 {
        cfg.push_str(&format!(
            "variable \"v{i}\" {{\n  default = \"default\"\n}}\ncluster \"c{i}\" {{\n  version = \"1.30\"\n  name    = var.v{i}\n}}\n"
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[
            ("main.kup.hcl", &cfg),
            ("kup.kupvars", "v3 = \"kupvars\"\nv4 = \"kupvars\"\nv5 = \"kupvars\"\nv6 = \"kupvars\"\nv7 = \"kupvars\"\n"),
            ("a.auto.kupvars", "v4 = \"a.auto\"\nv5 = \"a.auto\"\nv6 = \"a.auto\"\nv7 = \"a.auto\"\n"),
            ("b.auto.kupvars", "v5 = \"b.auto\"\nv6 = \"b.auto\"\nv7 = \"b.auto\"\n"),
        ],
    );
    let extra = tmp.path().join("extra.vars");
    std::fs::write(
        &extra,
        "v6 = \"var-file\"\nv7 = \"var-file\"\nv8 = \"var-file\"\n",
    )
    .unwrap();
    let opts = LoadOptions {
        vars: vec!["v7=cli-first".into(), "v7=cli".into(), "v8=cli".into()],
        var_files: vec![extra],
        env: vec![
            ("KUP_VAR_v2".into(), "env".into()),
            ("KUP_VAR_v3".into(), "env".into()),
            ("KUP_VAR_v8".into(), "env".into()),
            ("KUP_VAR_undeclared".into(), "ignored".into()),
            ("HOME".into(), "/root".into()),
        ],
    };
    let l = load_dir(tmp.path(), &opts).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<(String, String)> = l
        .desired
        .clusters
        .iter()
        .map(|c| (c.label.clone(), c.name.clone()))
        .collect();
    let want = [
        ("c1", "default"),
        ("c2", "env"),
        ("c3", "kupvars"),
        ("c4", "a.auto"),
        ("c5", "b.auto"),
        ("c6", "var-file"),
        ("c7", "cli"),
        ("c8", "cli"),
    ];
    assert_eq!(
        names,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    // Every vars file read is a source too.
    assert_eq!(l.sources.len(), 5);
}

#[test]
fn cli_values_are_parsed_as_hcl_when_they_are_literals() {
    let src = with_provider(
        r#"variable "n" { type = number }
variable "l" { type = list(string) }
variable "s" { type = string }
variable "a" {}
variable "region" {}
cluster "c" {
  version              = var.a
  parallel_node_groups = var.n
  name                 = join("-", concat(var.l, [var.s, var.region]))
}
"#,
    );
    let opts = LoadOptions {
        vars: vec![
            "n=3".into(),
            "l=[\"x\", \"y\"]".into(),
            "s=[not a list]".into(),
            "a=1.30".into(),
            "region=eu-west-1".into(),
        ],
        ..Default::default()
    };
    let (_t, r) = load_files(&[("main.kup.hcl", &src)], &opts);
    let l = r.unwrap_or_else(|d| panic!("{d}"));
    let c = &l.desired.clusters[0];
    assert_eq!(c.parallel_node_groups, 3);
    assert_eq!(c.name, "x-y-[not a list]-eu-west-1");
    assert_eq!(
        c.version,
        Version::new(1, 30, None),
        "untyped 1.30 stays the string 1.30"
    );
}

// ---------------------------------------------------------------------------------------
// config hash
// ---------------------------------------------------------------------------------------

#[test]
fn config_hash_changes_iff_an_input_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = with_provider(
        "variable \"v\" {\n  default = \"1.30\"\n}\ncluster \"c\" {\n  version = var.v\n}\n",
    );
    write(
        tmp.path(),
        &[("main.kup.hcl", &cfg), ("README.md", "not an input")],
    );
    let opts = LoadOptions::default();
    let h = |opts: &LoadOptions| {
        load_dir(tmp.path(), opts)
            .unwrap_or_else(|d| panic!("{d}"))
            .config_hash
    };
    let h1 = h(&opts);
    assert_eq!(h1, h(&opts), "stable across loads");
    // Unrelated files and env do not matter.
    std::fs::write(tmp.path().join("README.md"), "changed").unwrap();
    let env_other = LoadOptions {
        env: vec![("PATH".into(), "/bin".into())],
        ..Default::default()
    };
    assert_eq!(h1, h(&env_other));
    // A config change does.
    std::fs::write(tmp.path().join("main.kup.hcl"), cfg.replace("1.30", "1.31")).unwrap();
    let h2 = h(&opts);
    assert_ne!(h1, h2);
    // Whitespace-only change still changes the bytes, so the hash.
    std::fs::write(tmp.path().join("main.kup.hcl"), format!("{cfg}\n")).unwrap();
    let h3 = h(&opts);
    assert_ne!(h3, h1);
    std::fs::write(tmp.path().join("main.kup.hcl"), &cfg).unwrap();
    assert_eq!(h(&opts), h1, "restoring the file restores the hash");
    // Vars files, -var and KUP_VAR_ values are inputs.
    std::fs::write(tmp.path().join("kup.kupvars"), "v = \"1.29\"\n").unwrap();
    let h4 = h(&opts);
    assert_ne!(h4, h1);
    std::fs::write(tmp.path().join("kup.kupvars"), "v = \"1.28\"\n").unwrap();
    assert_ne!(h(&opts), h4);
    std::fs::remove_file(tmp.path().join("kup.kupvars")).unwrap();
    assert_eq!(h(&opts), h1);
    let cli = LoadOptions {
        vars: vec!["v=1.29".into()],
        ..Default::default()
    };
    assert_ne!(h(&cli), h1);
    let env = LoadOptions {
        env: vec![("KUP_VAR_v".into(), "1.29".into())],
        ..Default::default()
    };
    assert_ne!(h(&env), h1);
    assert_ne!(h(&env), h(&cli));
    // A new config file is an input.
    std::fs::write(tmp.path().join("z.kup.hcl"), "# nothing\n").unwrap();
    assert_ne!(h(&opts), h1);
}

// ---------------------------------------------------------------------------------------
// diagnostics
// ---------------------------------------------------------------------------------------

#[test]
fn no_config_files_names_the_dir() {
    let (t, r) = load_files(&[("readme.txt", "x")], &LoadOptions::default());
    let d = r.unwrap_err().0;
    assert_eq!(d.len(), 1);
    assert!(
        d[0].summary.contains(&t.path().display().to_string()),
        "{}",
        d[0]
    );
    assert!(hint(&d[0]).contains("main.kup.hcl"));
}

#[test]
fn unknown_attribute_suggests_the_right_one() {
    let src = with_provider("cluster \"prod\" {\n  version = \"1.31\"\n  versoin = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unsupported attribute", "main.kup.hcl", (6, 3));
    assert_eq!(pos(&src, "versoin", 0), (6, 3));
    assert!(hint(&e).contains("\"version\""), "{e}");
    let text = e.render(&[]);
    assert!(text.contains("main.kup.hcl:6:3"), "{text}");
}

#[test]
fn unknown_block_type_suggests_the_right_one() {
    let src = with_provider("clustr \"prod\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unsupported block type", "main.kup.hcl", (4, 1));
    assert!(hint(&e).contains("\"cluster\""), "{e}");

    let src = with_provider("cluster \"p\" {\n  version = \"1.31\"\n  nodegroup \"a\" {}\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unsupported block type", "main.kup.hcl", (6, 3));
    assert!(hint(&e).contains("\"node_group\""), "{e}");

    // An attribute written as a block, and a block written as an attribute.
    let src = with_provider("cluster \"p\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    drain = {}\n    version {}\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unsupported attribute", "main.kup.hcl", (7, 5));
    assert!(hint(&e).contains("drain {"), "{e}");
    let e = expect(&d, "Unsupported block type", "main.kup.hcl", (8, 5));
    assert!(hint(&e).contains("version ="), "{e}");
}

#[test]
fn missing_required_version() {
    let src = with_provider("cluster \"prod\" {\n  name = \"x\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Missing required attribute \"version\"",
        "main.kup.hcl",
        (4, 1),
    );
    assert!(hint(&e).contains("version = \"1.31\""), "{e}");
}

#[test]
fn missing_block_label() {
    let src = with_provider("cluster {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Missing name for cluster block", "main.kup.hcl", (4, 1));
    assert!(hint(&e).contains("cluster \"NAME\""), "{e}");

    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group {}\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "Missing name for node_group block",
        "main.kup.hcl",
        (6, 3),
    );

    let src = with_provider("cluster \"c\" \"d\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Extra label on cluster block", "main.kup.hcl", (4, 13));
}

#[test]
fn version_as_a_number_says_quote_it() {
    let src = with_provider("cluster \"prod\" {\n  version = 1.30\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Incorrect attribute value type",
        "main.kup.hcl",
        (5, 13),
    );
    assert!(hint(&e).contains("\"1.30\""), "{e}");
}

#[test]
fn bool_given_as_string() {
    let src =
        "provider \"eks\" {\n  simulate = \"yes\"\n}\ncluster \"c\" {\n  version = \"1.30\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(
        &d,
        "Incorrect attribute value type",
        "main.kup.hcl",
        (2, 14),
    );
    assert!(hint(&e).contains("simulate = true"), "{e}");
}

#[test]
fn undefined_variable_suggests_declared_one() {
    let src = with_provider("variable \"target\" {\n  default = \"1.31\"\n}\ncluster \"c\" {\n  version = var.targte\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "undeclared input variable", "main.kup.hcl", (8, 17));
    assert!(hint(&e).contains("var.target"), "{e}");

    // A bare name where a reference was meant.
    let src = with_provider(
        "variable \"target\" {\n  default = \"1.31\"\n}\ncluster \"c\" {\n  version = target\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unknown variable `target`", "main.kup.hcl", (8, 13));
    assert!(hint(&e).contains("var.target"), "{e}");
}

#[test]
fn undefined_local_suggests_declared_one() {
    let src = with_provider(
        "locals {\n  target = \"1.31\"\n}\ncluster \"c\" {\n  version = local.taget\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "undeclared local value", "main.kup.hcl", (8, 19));
    assert!(hint(&e).contains("local.target"), "{e}");
}

#[test]
fn unknown_function_suggests_a_known_one() {
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  name    = uper(\"x\")\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Call to unknown function", "main.kup.hcl", (6, 13));
    assert!(hint(&e).contains("\"upper\""), "{e}");
}

#[test]
fn duplicate_names() {
    // two clusters
    let src = with_provider("cluster \"prod\" {\n  version = \"1.31\"\n}\ncluster \"prod\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Duplicate cluster \"prod\"", "main.kup.hcl", (7, 9));
    assert!(
        e.detail.as_deref().unwrap().contains("main.kup.hcl:4:1"),
        "{e}"
    );

    // two clusters across files
    let d = errors(&[
        (
            "a.kup.hcl",
            &with_provider("cluster \"prod\" {\n  version = \"1.31\"\n}\n"),
        ),
        ("b.kup.hcl", "cluster \"prod\" {\n  version = \"1.31\"\n}\n"),
    ]);
    expect(&d, "Duplicate cluster \"prod\"", "b.kup.hcl", (1, 9));

    // two node groups in one cluster
    let src = with_provider(
        "cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {}\n  node_group \"a\" {}\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Duplicate node_group \"a\"", "main.kup.hcl", (7, 14));

    // the same node group name in two clusters is fine
    ok(&[(
        "main.kup.hcl",
        &with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {}\n}\ncluster \"d\" {\n  version = \"1.31\"\n  node_group \"a\" {}\n}\n"),
    )]);

    // two variables
    let src = with_provider("variable \"v\" {\n  default = \"1\"\n}\nvariable \"v\" {\n  default = \"2\"\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Duplicate variable \"v\"", "main.kup.hcl", (7, 10));

    // two providers with the same key, and an alias fixes it
    let src = format!(
        "{PROVIDER}{PROVIDER}cluster \"c\" {{\n  provider = \"eks\"\n  version = \"1.31\"\n}}\n"
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Duplicate provider \"eks\"", "main.kup.hcl", (4, 10));
    assert!(hint(&e).contains("alias"), "{e}");

    // two addons
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  addon \"coredns\" { version = \"latest\" }\n  addon \"coredns\" { version = \"compatible\" }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Duplicate addon \"coredns\"", "main.kup.hcl", (7, 9));

    // two locals in different blocks
    let src = with_provider(
        "locals {\n  a = 1\n}\nlocals {\n  a = 2\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Duplicate local value \"a\"", "main.kup.hcl", (8, 3));
    assert!(
        e.detail.as_deref().unwrap().contains("main.kup.hcl:5:3"),
        "{e}"
    );
    // a duplicate attribute in one block (the parser finds it)
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  version = \"1.30\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Duplicate attribute", "main.kup.hcl", (6, 3));
    assert!(hint(&e).contains("once"), "{e}");
}

#[test]
fn bad_versions() {
    for (v, needle) in [
        ("1.3O", "not a digit"),
        ("2.0", "not a Kubernetes 1.x version"),
        ("1", "at least a major and a minor"),
    ] {
        let src = with_provider(&format!("cluster \"c\" {{\n  version = \"{v}\"\n}}\n"));
        let d = errors(&[("main.kup.hcl", &src)]);
        let e = expect(&d, "Invalid Kubernetes version", "main.kup.hcl", (5, 13));
        assert!(e.detail.as_deref().unwrap().contains(needle), "{v}: {e}");
        assert!(hint(&e).contains("\"1.31\""), "{e}");
    }
    // in a node group too
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    version = \"1.x\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Invalid Kubernetes version", "main.kup.hcl", (7, 15));
}

#[test]
fn max_unavailable_out_of_range() {
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    max_unavailable = \"150%\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Invalid max_unavailable", "main.kup.hcl", (7, 23));
    assert!(e.detail.as_deref().unwrap().contains("1%..100%"), "{e}");
    for bad in ["\"0%\"", "-1", "1.5", "\"lots\""] {
        let src = with_provider(&format!(
            "cluster \"c\" {{\n  version = \"1.31\"\n  node_group \"a\" {{\n    max_surge = {bad}\n  }}\n}}\n"
        ));
        let d = errors(&[("main.kup.hcl", &src)]);
        expect(&d, "Invalid max_surge", "main.kup.hcl", (7, 17));
    }
}

#[test]
fn zero_unavailable_and_zero_surge_cannot_replace_anything() {
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    max_unavailable = 0\n    max_surge       = 0\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "no node could ever be replaced",
        "main.kup.hcl",
        (7, 23),
    );
    assert!(hint(&e).contains("max_surge = 1"), "{e}");
    // 0 unavailable with a surge is fine.
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    max_unavailable = 0\n    max_surge       = \"10%\"\n  }\n}\n");
    let l = ok(&[("main.kup.hcl", &src)]);
    assert_eq!(
        l.desired.clusters[0].node_groups[0].strategy,
        Strategy::Rolling {
            max_unavailable: Unavailable::Count(0),
            max_surge: Some(Unavailable::Percent(10))
        }
    );
}

#[test]
fn node_group_newer_than_cluster() {
    let src = with_provider("cluster \"c\" {\n  version = \"1.30\"\n  node_group \"a\" {\n    version = \"1.31\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "newer than the cluster version",
        "main.kup.hcl",
        (7, 15),
    );
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .contains("kubelet must not be newer than the control plane"),
        "{e}"
    );
    assert!(hint(&e).contains("1.30"), "{e}");
    // A newer patch of the same minor is fine.
    ok(&[(
        "main.kup.hcl",
        &with_provider("cluster \"c\" {\n  version = \"1.30.1\"\n  node_group \"a\" {\n    version = \"1.30.5\"\n  }\n}\n"),
    )]);
}

#[test]
fn node_group_too_far_behind() {
    // 1.31 - 1.27 = 4 minors; the upstream policy allows 3 for kubelets >= 1.25.
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    version = \"1.27\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "too far behind", "main.kup.hcl", (7, 15));
    assert!(hint(&e).contains("1.28"), "{e}");
    // Exactly 3 behind is allowed.
    ok(&[(
        "main.kup.hcl",
        &with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    version = \"1.28\"\n  }\n}\n"),
    )]);
    // Kubelets older than 1.25 may only trail by 2.
    let src = with_provider("cluster \"c\" {\n  version = \"1.26\"\n  node_group \"a\" {\n    version = \"1.23\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "too far behind", "main.kup.hcl", (7, 15));
}

#[test]
fn blue_green_block_with_rolling_strategy() {
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    strategy = \"rolling\"\n    blue_green {\n      soak = \"1m\"\n    }\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "blue_green block with a rolling strategy",
        "main.kup.hcl",
        (8, 5),
    );
    assert!(hint(&e).contains("strategy = \"blue_green\""), "{e}");
    // The default strategy is rolling too.
    let src = with_provider(
        "cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    blue_green {}\n  }\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "blue_green block with a rolling strategy",
        "main.kup.hcl",
        (7, 5),
    );
    // A mistyped strategy.
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  node_group \"a\" {\n    strategy = \"blue-green\"\n  }\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Unknown strategy", "main.kup.hcl", (7, 16));
    assert!(hint(&e).contains("\"blue_green\""), "{e}");
}

#[test]
fn validation_failure_points_at_the_value_source() {
    let cfg = with_provider(
        "variable \"target\" {\n  default = \"1.31\"\n  validation {\n    condition     = can(regex(\"^1\\\\.[0-9]+$\", var.target))\n    error_message = \"target must look like 1.31\"\n  }\n}\ncluster \"c\" {\n  version = var.target\n}\n",
    );
    // The default passes.
    ok(&[("main.kup.hcl", &cfg)]);
    // A failing default: at the default's value.
    let bad_default = cfg.replace("default = \"1.31\"", "default = \"v1.31\"");
    let d = errors(&[("main.kup.hcl", &bad_default)]);
    let e = expect(
        &d,
        "Invalid value for variable \"target\"",
        "main.kup.hcl",
        (5, 13),
    );
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .contains("target must look like 1.31"),
        "{e}"
    );
    // From a vars file: at the assignment in that file.
    let d = errors(&[
        ("main.kup.hcl", &cfg),
        ("kup.kupvars", "\n\ntarget = \"latest\"\n"),
    ]);
    let e = expect(
        &d,
        "Invalid value for variable \"target\"",
        "kup.kupvars",
        (3, 10),
    );
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .contains("target must look like 1.31"),
        "{e}"
    );
    // From -var: at the variable block, naming the -var.
    let d = errors_with(
        &[("main.kup.hcl", &cfg)],
        &LoadOptions {
            vars: vec!["target=nope".into()],
            ..Default::default()
        },
    );
    let e = expect(
        &d,
        "Invalid value for variable \"target\"",
        "main.kup.hcl",
        (4, 1),
    );
    assert!(
        e.detail.as_deref().unwrap().contains("-var 'target=nope'"),
        "{e}"
    );
    // A non-bool condition.
    let bad_cond = cfg.replace("can(regex(\"^1\\\\.[0-9]+$\", var.target))", "var.target");
    let d = errors(&[("main.kup.hcl", &bad_cond)]);
    expect(&d, "Invalid validation condition", "main.kup.hcl", (7, 21));
    // Referring to another variable in a validation is not allowed.
    let other = format!(
        "variable \"x\" {{\n  default = 1\n}}\n{}",
        cfg.replace("var.target))", "var.x))")
    );
    let d = errors(&[("main.kup.hcl", &other)]);
    let (l, c) = pos(&other, "var.x", 0);
    expect(&d, "undeclared input variable", "main.kup.hcl", (l, c + 4));
}

#[test]
fn vars_file_problems() {
    let cfg = with_provider("variable \"target\" {\n  default = \"1.31\"\n}\ncluster \"c\" {\n  version = var.target\n}\n");
    // Undeclared variable in a vars file: error (not a warning), with did-you-mean.
    let d = errors(&[
        ("main.kup.hcl", &cfg),
        ("kup.kupvars", "# values\ntarge = \"1.30\"\n"),
    ]);
    let e = expect(&d, "Value for undeclared variable", "kup.kupvars", (2, 1));
    assert!(hint(&e).contains("\"target\""), "{e}");
    // Syntax error in a vars file.
    let d = errors(&[
        ("main.kup.hcl", &cfg),
        ("x.auto.kupvars", "target = \"1.30\nother = 1\n"),
    ]);
    let e = expect(
        &d,
        "Syntax error",
        "x.auto.kupvars",
        pos_of_parse_error("target = \"1.30\nother = 1\n"),
    );
    assert!(e.detail.is_some());
    // Blocks and references are not allowed.
    let d = errors(&[
        ("main.kup.hcl", &cfg),
        ("kup.kupvars", "target = var.other\n"),
    ]);
    expect(
        &d,
        "var.* references are not allowed here",
        "kup.kupvars",
        (1, 10),
    );
    // A wrong type for a typed variable, from a -var-file.
    let typed = cfg.replace(
        "variable \"target\" {",
        "variable \"n\" {\n  type = number\n  default = 1\n}\nvariable \"target\" {",
    );
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &[("main.kup.hcl", &typed)]);
    let vf = tmp.path().join("prod.vars");
    std::fs::write(&vf, "n = \"many\"\n").unwrap();
    let d = load_dir(
        tmp.path(),
        &LoadOptions {
            var_files: vec![vf.clone()],
            ..Default::default()
        },
    )
    .unwrap_err()
    .0;
    let e = expect(&d, "Invalid value for variable \"n\"", "prod.vars", (1, 5));
    assert!(e.detail.as_deref().unwrap().contains("number"), "{e}");
    // A -var for an undeclared variable.
    let d = errors_with(
        &[("main.kup.hcl", &cfg)],
        &LoadOptions {
            vars: vec!["targt=1.30".into()],
            ..Default::default()
        },
    );
    let e = d
        .iter()
        .find(|d| d.summary.contains("undeclared variable \"targt\""))
        .unwrap();
    assert!(hint(e).contains("\"target\""), "{e}");
}

/// Where hcl-edit reports the unterminated string: computed from the parser directly so the
/// test checks our mapping (its line:col), not the parser's choice of position.
fn pos_of_parse_error(src: &str) -> (usize, usize) {
    let e = hcl::edit::parser::parse_body(src).unwrap_err();
    (e.location().line(), e.location().column())
}

#[test]
fn missing_variable_value_says_how_to_set_it() {
    let src = with_provider(
        "\nvariable \"target\" {\n  type = string\n}\ncluster \"c\" {\n  version = var.target\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "No value for required variable \"target\"",
        "main.kup.hcl",
        (5, 1),
    );
    for how in ["-var", "KUP_VAR_target", "kup.kupvars"] {
        assert!(hint(&e).contains(how), "{e}");
    }
    // And no cascade of errors from the cluster that uses it.
    assert_eq!(d.len(), 1, "{d:?}");
}

#[test]
fn hcl_syntax_errors_map_to_line_and_col() {
    let src =
        "provider \"eks\" {\n  region = \"eu-west-1\"\n}\n\ncluster \"c\" {\n  version = \n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    assert_eq!(d.len(), 1);
    let e = &d[0];
    assert_eq!(e.summary, "Syntax error");
    let loc = e.loc.clone().unwrap();
    assert_eq!((loc.line, loc.col), pos_of_parse_error(src));
    assert_eq!(loc.line, 6, "the value is missing after `version =`: {e}");
    let text = e.render(&[]);
    assert!(
        text.contains(&format!("main.kup.hcl:{}:{}", loc.line, loc.col)),
        "{text}"
    );
    // Unclosed block at end of file.
    let src = "cluster \"c\" {\n  version = \"1.31\"\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let loc = d[0].loc.clone().unwrap();
    assert_eq!((loc.line, loc.col), pos_of_parse_error(src));
}

#[test]
fn cycle_in_locals_is_reported_once() {
    let src = with_provider("locals {\n  a = local.b\n  b = \"${local.c}-x\"\n  c = local.a\n  d = \"fine\"\n}\ncluster \"c\" {\n  version = \"1.31\"\n  name    = local.a\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Cycle in local values", "main.kup.hcl", (5, 3));
    assert!(
        e.detail
            .as_deref()
            .unwrap()
            .contains("local.a → local.b → local.c → local.a"),
        "{e}"
    );
    assert_eq!(d.len(), 1, "no cascade: {d:?}");
}

#[test]
fn locals_resolve_in_dependency_order_across_blocks_and_files() {
    let l = ok(&[
        ("a.kup.hcl", &with_provider("locals {\n  full = \"${local.base}.2\"\n}\ncluster \"c\" {\n  version = local.full\n}\n")),
        ("b.kup.hcl", "locals {\n  base = var.minor\n}\nvariable \"minor\" {\n  default = \"1.30\"\n}\n"),
    ]);
    assert_eq!(l.desired.clusters[0].version, Version::new(1, 30, Some(2)));
}

#[test]
fn evaluation_errors_point_at_the_failing_expression() {
    let src = with_provider("locals {\n  m = { a = \"1.31\" }\n}\ncluster \"c\" {\n  version = \"1.31\"\n  name    = \"x-${upper(local.m.b)}\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    assert_eq!(d.len(), 1, "{d:?}");
    let loc = d[0].loc.clone().unwrap();
    let (l, c) = pos(&src, "local.m.b", 0);
    assert_eq!(
        (loc.line, loc.col),
        (l, c + 8),
        "at the missing attribute: {}",
        d[0]
    );
    assert_eq!(d[0].summary, "Unsupported attribute");
    // A function argument of the wrong type: at the call.
    let src = with_provider("cluster \"c\" {\n  version = \"1.31\"\n  name    = upper([1])\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    assert_eq!(d.len(), 1, "{d:?}");
    expect(&d, "Error in function call", "main.kup.hcl", (6, 13));
    // A failing regex outside can().
    let src = with_provider("cluster \"c\" {\n  version = regex(\"^2\", \"1.31\")\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Error in function call", "main.kup.hcl", (5, 13));
    assert!(
        e.detail.as_deref().unwrap().contains("did not match"),
        "{e}"
    );
}

#[test]
fn provider_rules() {
    // unknown kind
    let d = errors(&[(
        "main.kup.hcl",
        "provider \"ekss\" {}\ncluster \"c\" {\n  version = \"1.31\"\n}\n",
    )]);
    let e = expect(
        &d,
        "Unknown provider type \"ekss\"",
        "main.kup.hcl",
        (1, 10),
    );
    assert!(hint(&e).contains("\"eks\""), "{e}");
    // every known kind is accepted
    for k in ["eks", "aks", "gke", "kubeadm", "k3s", "rke2"] {
        // kubeadm clusters also name their control-plane hosts.
        let cp = if k == "kubeadm" {
            "  control_plane {\n    hosts = [\"cp1\"]\n  }\n"
        } else {
            ""
        };
        ok(&[(
            "main.kup.hcl",
            &format!("provider \"{k}\" {{}}\ncluster \"c\" {{\n  version = \"1.31\"\n{cp}}}\n"),
        )]);
    }
    // two providers, cluster without provider
    let src =
        "provider \"eks\" {}\nprovider \"gke\" {}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(
        &d,
        "Missing required attribute \"provider\"",
        "main.kup.hcl",
        (3, 1),
    );
    assert!(
        hint(&e).contains("\"eks\"") && hint(&e).contains("\"gke\""),
        "{e}"
    );
    // provider names an undeclared key
    let src = "provider \"eks\" {\n  alias = \"us\"\n}\ncluster \"c\" {\n  provider = \"eks.su\"\n  version  = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(&d, "Unknown provider \"eks.su\"", "main.kup.hcl", (5, 14));
    assert!(hint(&e).contains("\"eks.us\""), "{e}");
    // simulate with a missing world file: at the attribute, or at the block when defaulted
    let src = "provider \"eks\" {\n  simulate = true\n  world    = \"nope.hcl\"\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    expect(&d, "World file not found", "main.kup.hcl", (3, 14));
    let src =
        "provider \"eks\" {\n  simulate = true\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(&d, "World file not found", "main.kup.hcl", (1, 1));
    assert!(hint(&e).contains("world.hcl"), "{e}");
    // world and speed only with simulate; speed > 0
    let src = "provider \"eks\" {\n  world = \"world.hcl\"\n  speed = 10\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src), ("world.hcl", "")]);
    expect(
        &d,
        "world is only valid with simulate",
        "main.kup.hcl",
        (2, 3),
    );
    expect(
        &d,
        "speed is only valid with simulate",
        "main.kup.hcl",
        (3, 3),
    );
    let src = "provider \"eks\" {\n  simulate = true\n  speed    = 0\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src), ("world.hcl", "")]);
    expect(&d, "Invalid speed", "main.kup.hcl", (3, 14));
    // bad duration
    let src = "provider \"eks\" {\n  poll_interval = \"15 minutes please\"\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n";
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(&d, "Invalid duration", "main.kup.hcl", (2, 19));
    assert!(hint(&e).contains("\"15m\""), "{e}");
}

#[test]
fn parallel_node_groups_must_be_at_least_one() {
    let src = with_provider(
        "cluster \"c\" {\n  version              = \"1.31\"\n  parallel_node_groups = 0\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(&d, "Invalid parallel_node_groups", "main.kup.hcl", (6, 26));
}

#[test]
fn bad_type_constraint() {
    let src = with_provider("variable \"v\" {\n  type    = strng\n  default = \"x\"\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(&d, "Invalid type specification", "main.kup.hcl", (5, 13));
    assert!(hint(&e).contains("\"string\""), "{e}");
    // a default that does not fit its type
    let src = with_provider("variable \"v\" {\n  type    = list(number)\n  default = [1, \"x\"]\n}\ncluster \"c\" {\n  version = \"1.31\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "Invalid value for variable \"v\"",
        "main.kup.hcl",
        (6, 13),
    );
}

#[test]
fn diagnostics_render_and_serialize() {
    let src = with_provider("cluster \"prod\" {\n  versoin = \"1.31\"\n}\n");
    let (_t, r) = load_files(&[("main.kup.hcl", &src)], &LoadOptions::default());
    let diags = r.unwrap_err();
    assert!(diags.0.len() >= 2);
    let text = diags.to_string();
    assert!(text.contains("Error: Unsupported attribute at "), "{text}");
    assert!(text.contains("main.kup.hcl:5:3"), "{text}");
    assert!(text.contains("  5:   versoin = \"1.31\""), "{text}");
    assert!(text.contains("^^^^^^^"), "{text}");
    assert!(text.contains("did you mean \"version\"?"), "{text}");
    let first = &diags.0[0];
    assert_eq!(first.summary, "Missing required attribute \"version\"");
    let unsupported = diags
        .0
        .iter()
        .find(|d| d.summary == "Unsupported attribute")
        .unwrap();
    let j = serde_json::to_value(unsupported).unwrap();
    assert_eq!(j["severity"], "error");
    assert_eq!(j["loc"]["line"], 5);
    let back: Diagnostic = serde_json::from_value(j).unwrap();
    assert_eq!(&back, unsupported);
    let _: &dyn std::error::Error = &diags;
}

#[test]
fn never_panics_on_truncated_or_mangled_input() {
    let mut inputs: Vec<String> = Vec::new();
    for (i, _) in FULL.char_indices().step_by(7) {
        inputs.push(FULL[..i].to_string());
    }
    for junk in [
        "\u{0}", "}}}}", "\"${", "<<EOF\n", "${", "é", "[[[[", "= = =", "/*",
    ] {
        inputs.push(format!(
            "{}{junk}{}",
            &FULL[..FULL.len() / 2],
            &FULL[FULL.len() / 2..]
        ));
    }
    for tail in ["é", "\"é", "{é", "= é", "<<EOFé", "日本"] {
        inputs.push(format!("cluster \"c\" {{\n  version = \"1.31\"\n{tail}"));
        inputs.push(format!("a = 1\n{tail}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("world.hcl"), WORLD).unwrap();
    for input in &inputs {
        std::fs::write(tmp.path().join("main.kup.hcl"), input).unwrap();
        let _ = load_dir(tmp.path(), &LoadOptions::default());
        let _ = format_source(input);
    }
}

// ---------------------------------------------------------------------------------------
// fmt
// ---------------------------------------------------------------------------------------

#[test]
fn fmt_aligns_indents_and_keeps_comments() {
    let src = "# header comment\r\nvariable \"target\" {\n default=\"1.31\"   \n      description = \"x\" # trailing\n\n   type = string\n}\n\n\ncluster \"prod\" {\n# inside\nversion = var.target\nname=\"p\"\nparallel_node_groups = 1\n/* block\n   comment */\nnode_group \"a\" {\nmax_unavailable = \"25%\"\ndrain {\ntimeout = \"10m\"\n}\n}\ntags = {\nteam = \"x\"\n  cost_center = \"y\"\n}\n}\n\n\n";
    let out = format_source(src).unwrap();
    let want = "# header comment
variable \"target\" {
  default     = \"1.31\"
  description = \"x\" # trailing

  type = string
}


cluster \"prod\" {
  # inside
  version              = var.target
  name                 = \"p\"
  parallel_node_groups = 1
  /* block
   comment */
  node_group \"a\" {
    max_unavailable = \"25%\"
    drain {
      timeout = \"10m\"
    }
  }
  tags = {
    team        = \"x\"
    cost_center = \"y\"
  }
}
";
    assert_eq!(out, want);
    assert_eq!(format_source(&out).unwrap(), out, "idempotent");
}

#[test]
fn fmt_is_idempotent_and_preserves_meaning_on_the_fixture() {
    let messy: String = FULL
        .lines()
        .map(|l| {
            let t = l.trim_start();
            // Destroy indentation and alignment, add trailing spaces.
            format!("{}   ", t.replacen(" = ", "=", 1).replace("  =", "="))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let once = format_source(&messy).unwrap();
    assert_eq!(format_source(&once).unwrap(), once);
    let a: hcl::Body = hcl::from_str(&messy).unwrap();
    let b: hcl::Body = hcl::from_str(&once).unwrap();
    assert_eq!(a, b);
    // The fixture is already canonical.
    assert_eq!(format_source(FULL).unwrap(), FULL);
    assert!(once.ends_with("}\n") && !once.ends_with("\n\n"));
    assert!(once.lines().all(|l| l == l.trim_end()));
}

#[test]
fn fmt_leaves_heredocs_and_strings_alone() {
    let src = "locals {\n    script = <<-EOT\n      echo {   \n   }\n    EOT\n  braces = \"{ [ ( # not a comment\"\n    x = \"${join(\"}\", [\"{\"])}\"\n}\n";
    let out = format_source(src).unwrap();
    let want = "locals {\n  script = <<-EOT\n      echo {   \n   }\n    EOT\n  braces = \"{ [ ( # not a comment\"\n  x      = \"${join(\"}\", [\"{\"])}\"\n}\n";
    assert_eq!(out, want);
    assert_eq!(format_source(&out).unwrap(), out);
}

#[test]
fn fmt_rejects_unparseable_input_with_position() {
    let e = format_source("cluster \"c\" {\n  version = \n}\n").unwrap_err();
    assert_eq!(e.summary, "Syntax error");
    assert_eq!(e.loc.unwrap().line, 2);
}

#[test]
fn diagnostics_come_in_source_order() {
    let src = with_provider(
        "cluster \"prod\" {\n  version = var.nope\n  name    = uper(\"x\")\n  versoin = 1\n}\n",
    );
    let d = errors(&[("b.kup.hcl", &src), ("a.kup.hcl", "clustr \"x\" {}\n")]);
    let got: Vec<(String, usize, usize)> = d
        .iter()
        .map(|d| {
            let l = d.loc.clone().unwrap();
            (
                l.file.rsplit('/').next().unwrap().to_string(),
                l.line,
                l.col,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.kup.hcl".to_string(), 1, 1),
            ("b.kup.hcl".to_string(), 5, 17),
            ("b.kup.hcl".to_string(), 6, 13),
            ("b.kup.hcl".to_string(), 7, 3),
        ]
    );
}

#[test]
fn the_quickstart_example_loads_and_is_formatted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let l = load_dir(&dir, &LoadOptions::default()).unwrap_or_else(|d| panic!("{d}"));
    let prod = l.desired.cluster("prod").unwrap();
    assert_eq!(prod.provider, "eks");
    assert!(l.desired.providers[0].simulate);
    assert!(Path::new(l.desired.providers[0].world.as_deref().unwrap()).is_file());
    for (path, text) in &l.sources {
        let formatted = format_source(text).unwrap();
        assert_eq!(
            &formatted,
            text,
            "{} is not in canonical format",
            path.display()
        );
    }
}

#[test]
fn version_aliases_load_on_clusters_and_are_refused_on_node_groups() {
    let src = with_provider(
        "cluster \"c\" {\n  version = \"latest\"\n  node_group \"a\" {}\n  node_group \"b\" { version = \"1.29\" }\n}\ncluster \"d\" {\n  version = \"-\"\n}\n",
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    let c = l.desired.cluster("c").unwrap();
    assert_eq!(c.version_alias, Some(crate::model::VersionAlias::Latest));
    assert!(c.node_groups[0].follows_cluster);
    assert!(!c.node_groups[1].follows_cluster);
    assert_eq!(
        l.desired.cluster("d").unwrap().version_alias,
        Some(crate::model::VersionAlias::ProviderDefault)
    );

    let bad = with_provider(
        "cluster \"c\" {\n  version = \"1.30\"\n  node_group \"a\" { version = \"latest\" }\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &bad)]);
    let e = expect(
        &d,
        "Version alias on a node group",
        "main.kup.hcl",
        pos(&bad, "\"latest\"", 0),
    );
    assert!(
        e.hint.as_deref().unwrap_or("").contains("remove version"),
        "{e}"
    );
    // A typo of an alias is an invalid version whose hint names the aliases.
    let typo = with_provider("cluster \"c\" {\n  version = \"lastest\"\n}\n");
    let d = errors(&[("main.kup.hcl", &typo)]);
    let e = expect(
        &d,
        "Invalid Kubernetes version",
        "main.kup.hcl",
        pos(&typo, "\"lastest\"", 0),
    );
    assert!(
        e.hint.as_deref().unwrap_or("").contains("\"latest\""),
        "{e}"
    );
}

#[test]
fn node_soak_loads_on_rolling_groups_and_is_refused_on_blue_green() {
    let src = with_provider(
        "cluster \"c\" {\n  version = \"1.30\"\n  node_group \"a\" { node_soak = \"5m\" }\n}\n",
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    assert_eq!(
        l.desired.cluster("c").unwrap().node_groups[0].node_soak,
        Some(Duration::from_secs(300))
    );
    let bad = with_provider(
        "cluster \"c\" {\n  version = \"1.30\"\n  node_group \"a\" {\n    strategy  = \"blue_green\"\n    node_soak = \"5m\"\n  }\n}\n",
    );
    let d = errors(&[("main.kup.hcl", &bad)]);
    expect(
        &d,
        "node_soak is for rolling node groups",
        "main.kup.hcl",
        pos(&bad, "node_soak", 0),
    );
}

// ---------------------------------------------------------------------------------------
// K3s / RKE2 (system-upgrade-controller) settings
// ---------------------------------------------------------------------------------------

#[test]
fn k3s_cluster_settings_load() {
    let src = r#"provider "k3s" {
  channel_server = "https://mirror.example/v1-release/channels"
}

cluster "edge" {
  kubeconfig = "~/.kube/edge.yaml"
  channel    = "stable"
  namespace  = "suc"
  keep_plans = true
  node_group "servers" {
    max_unavailable = 1
  }
  node_group "agents" {
    max_unavailable = "25%"
    node_selector   = "!node-role.kubernetes.io/control-plane,pool in (edge,shop)"
    tolerations     = [{ key = "edge", operator = "Exists", effect = "NoSchedule" }]
    batch_soak      = "2m"
    timeout         = "2h"
    drain {
      timeout              = "10m"
      delete_emptydir_data = true
    }
    window {
      days      = ["saturday", "sun"]
      start     = "01:00"
      end       = "05:00"
      time_zone = "UTC"
    }
  }
}
"#;
    let l = ok(&[("main.kup.hcl", src)]);
    let c = &l.desired.clusters[0];
    assert_eq!(c.channel.as_deref(), Some("stable"));
    assert_eq!(
        c.version_alias,
        Some(crate::model::VersionAlias::ProviderDefault)
    );
    assert_eq!(c.namespace.as_deref(), Some("suc"));
    assert!(c.keep_plans);
    let a = &c.node_groups[1];
    assert_eq!(a.tolerations[0].operator.as_deref(), Some("Exists"));
    assert_eq!(a.window.as_ref().unwrap().days, ["saturday", "sun"]);
    assert_eq!(a.batch_soak, Some(Duration::from_secs(120)));
    assert_eq!(a.timeout, Some(Duration::from_secs(7200)));
    assert!(a.node_selector.as_deref().unwrap().contains("pool in"));
    assert_eq!(
        l.desired.providers[0].channel_server.as_deref(),
        Some("https://mirror.example/v1-release/channels")
    );
}

#[test]
fn k3s_settings_are_refused_elsewhere_and_checked() {
    let src = with_provider(
        r#"cluster "prod" {
  version   = "1.31"
  namespace = "system-upgrade"
  node_group "general" {
    node_selector = "pool=general"
  }
}
"#,
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "namespace is not used by provider type \"eks\"",
        "main.kup.hcl",
        pos(&src, "namespace", 0),
    );
    assert!(hint(&e).contains("remove namespace"));
    expect(
        &d,
        "node_selector is not used",
        "main.kup.hcl",
        pos(&src, "node_selector", 0),
    );

    let src = r#"provider "k3s" {}
cluster "edge" {
  version = "v1.31.4+k3s1"
  channel = "stable"
  node_group "agents" {
    node_selector = "a in (b"
    window {
      days  = ["caturday"]
      start = "25:00"
      end   = "05:00"
    }
  }
}
"#;
    let d = errors(&[("main.kup.hcl", src)]);
    expect(
        &d,
        "Both version and channel",
        "main.kup.hcl",
        pos(src, "channel", 0),
    );
    expect(
        &d,
        "Invalid node_selector",
        "main.kup.hcl",
        pos(src, "\"a in (b\"", 0),
    );
    let e = expect(
        &d,
        "\"caturday\" is not a day",
        "main.kup.hcl",
        pos(src, "[\"caturday\"]", 0),
    );
    assert!(hint(&e).contains("saturday"));
    expect(
        &d,
        "Invalid start time",
        "main.kup.hcl",
        pos(src, "\"25:00\"", 0),
    );

    let src = r#"provider "rke2" {
  versions = ["v1.31.4+rke2r1", "1.32"]
}
cluster "edge" {
  version = "1.31"
}
"#;
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(
        &d,
        "\"1.32\" in versions is not an exact release",
        "main.kup.hcl",
        pos(src, "[\"v1.31", 0),
    );
    assert!(hint(&e).contains("rke2r1"));
}

// ---------------------------------------------------------------------------------------
// kubeadm over SSH
// ---------------------------------------------------------------------------------------

#[test]
fn kubeadm_cluster_loads_and_refuses_hostile_hosts() {
    let src = r#"provider "kubeadm" {}

cluster "lab" {
  kubeconfig            = "~/.kube/lab.conf"
  version               = "1.31"
  etcd_graceful_restart = true
  certificate_renewal   = false
  recover               = "force"
  ssh {
    user        = "ops"
    private_key = "~/.ssh/id_ed25519"
    port        = 2222
    sudo        = true
  }
  control_plane {
    hosts = ["cp1.lab", "cp2.lab", "10.0.0.3"]
  }
  cni_upgrade {
    command = ["kubectl", "apply", "-f", "/etc/cni/calico.yaml"]
  }
  node_group "workers" {
    hosts           = ["w1.lab", "w2.lab"]
    max_unavailable = 2
  }
  node_group "gpu" {
    node_selector = "pool=gpu"
  }
}
"#;
    let l = ok(&[("main.kup.hcl", src)]);
    let k = l.desired.clusters[0].kubeadm.as_ref().unwrap();
    assert_eq!(k.control_plane_hosts, ["cp1.lab", "cp2.lab", "10.0.0.3"]);
    assert_eq!(k.ssh.port, Some(2222));
    assert_eq!(k.ssh.user.as_deref(), Some("ops"));
    assert!(k.etcd_graceful_restart && !k.certificate_renewal && k.force);
    assert_eq!(k.cni_upgrade[0], "kubectl");
    assert_eq!(
        l.desired.clusters[0].node_groups[0].hosts,
        ["w1.lab", "w2.lab"]
    );

    let src = r#"provider "kubeadm" {}
cluster "lab" {
  kubeconfig = "~/.kube/lab.conf"
  version    = "1.31"
  control_plane {
    hosts = ["cp1.lab; rm -rf /"]
  }
  node_group "workers" {
    hosts = ["-oProxyCommand=id", "w$(id)"]
  }
  node_group "empty" {}
}
"#;
    let d = errors(&[("main.kup.hcl", src)]);
    let e = expect(
        &d,
        "\"cp1.lab; rm -rf /\" is not a host name",
        "main.kup.hcl",
        pos(src, "[\"cp1.lab;", 0),
    );
    assert!(e.detail.as_deref().unwrap_or("").contains("';'"), "{e}");
    expect(
        &d,
        "\"-oProxyCommand=id\" is not a host name",
        "main.kup.hcl",
        pos(src, "[\"-oProxy", 0),
    );
    expect(
        &d,
        "\"w$(id)\" is not a host name",
        "main.kup.hcl",
        pos(src, "[\"-oProxy", 0),
    );
    expect(
        &d,
        "node_group \"empty\" names no hosts",
        "main.kup.hcl",
        pos(src, "node_group \"empty\"", 0),
    );

    let src = r#"provider "kubeadm" {}
cluster "lab" {
  version = "1.31"
}
"#;
    let d = errors(&[("main.kup.hcl", src)]);
    expect(
        &d,
        "has no control_plane block",
        "main.kup.hcl",
        pos(src, "cluster", 0),
    );

    let src = with_provider(
        r#"cluster "prod" {
  version = "1.31"
  ssh {
    user = "ops"
  }
}
"#,
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "ssh is not used by provider type \"eks\"",
        "main.kup.hcl",
        pos(&src, "ssh", 0),
    );
}

#[test]
fn preflight_block_loads_and_checks_its_choice() {
    let src = with_provider(
        r#"cluster "prod" {
  version = "1.31"
  preflight {
    manifests    = ["k8s", "charts/rendered.yaml"]
    removed_apis = "warn"
    health       = "off"
    insights     = "warn"
  }
  postflight {
    smoke_pod = true
    namespace = "smoke"
    timeout   = "3m"
  }
}
"#,
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    let c = &l.desired.clusters[0];
    let p = &c.preflight;
    assert_eq!(p.manifests, ["k8s", "charts/rendered.yaml"]);
    assert_eq!(p.removed_apis, crate::model::CheckMode::Warn);
    assert_eq!(p.health, crate::model::CheckMode::Off);
    assert_eq!(p.insights, crate::model::CheckMode::Warn);
    // Unset checks take their defaults: add-ons warn.
    assert_eq!(p.addons, crate::model::CheckMode::Warn);
    let pf = &c.postflight;
    assert!(pf.enabled && pf.smoke_pod);
    assert_eq!(pf.namespace, "smoke");
    assert_eq!(pf.smoke_image, crate::model::SMOKE_IMAGE);
    assert_eq!(pf.timeout, std::time::Duration::from_secs(180));
    let bad = src.replace("\"off\"", "\"of\"");
    let e = expect(
        &errors(&[("main.kup.hcl", &bad)]),
        "health = \"of\" is not a choice",
        "main.kup.hcl",
        pos(&bad, "\"of\"", 0),
    );
    assert!(hint(&e).contains("\"off\""), "{e}");
    let src = src.replace("\"warn\"", "\"blok\"");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "removed_apis = \"blok\" is not a choice",
        "main.kup.hcl",
        pos(&src, "\"blok\"", 0),
    );
    assert!(hint(&e).contains("block"), "{e}");
}

#[test]
fn hooks_load_in_order_and_unknown_points_are_named() {
    let src = with_provider(
        r#"cluster "prod" {
  version = "1.31"
  hook "after_control_plane" {
    command = ["./smoke.sh", "--quick"]
    timeout = "2m"
  }
  hook "after_cluster" {
    command = ["k6", "run", "load.js"]
  }
}
"#,
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    let h = &l.desired.clusters[0].hooks;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].point, "after_control_plane");
    assert_eq!(h[0].timeout, Duration::from_secs(120));
    assert_eq!(h[1].timeout, Duration::from_secs(300));
    let bad = src.replace("\"after_cluster\"", "\"after_clustr\"");
    let d = errors(&[("main.kup.hcl", &bad)]);
    let e = expect(
        &d,
        "Unknown hook point \"after_clustr\"",
        "main.kup.hcl",
        pos(&bad, "\"after_clustr\"", 0),
    );
    assert!(hint(&e).contains("after_cluster"), "{e}");
}

fn fleet(rollout: &str) -> String {
    with_provider(&format!(
        r#"cluster "dev-eu" {{ version = "1.31" }}
cluster "dev-us" {{ version = "1.31" }}
cluster "stg-eu" {{ version = "1.31" }}
cluster "prod-eu" {{ version = "1.31" }}
cluster "prod-us" {{ version = "1.31" }}
{rollout}"#
    ))
}

#[test]
fn rollouts_resolve_globs_in_configuration_order() {
    let src = fleet(
        r#"rollout "q3-upgrade" {
  wave "canary"  { clusters = ["dev-us", "dev-eu"] }
  wave "staging" {
    clusters = ["stg-*"]
    after    = ["canary"]
    soak     = "24h"
  }
  wave "prod" {
    clusters     = ["prod-*"]
    after        = ["staging"]
    soak         = "72h"
    max_parallel = 1
    window {
      days      = ["tue", "wed", "thu"]
      start     = "09:00"
      end       = "16:00"
      time_zone = "Europe/Berlin"
    }
  }
}
"#,
    );
    let l = ok(&[("main.kup.hcl", &src)]);
    let r = &l.desired.rollouts[0];
    assert_eq!(r.name, "q3-upgrade");
    let w = |i: usize| &r.waves[i];
    assert_eq!(w(0).clusters, ["dev-eu", "dev-us"], "configuration order");
    assert_eq!(w(1).clusters, ["stg-eu"]);
    assert_eq!(w(1).soak, std::time::Duration::from_secs(86400));
    assert_eq!(w(2).clusters, ["prod-eu", "prod-us"]);
    assert_eq!(w(2).max_parallel, Some(1));
    assert_eq!(
        w(2).window.as_ref().unwrap().time_zone.as_deref(),
        Some("Europe/Berlin")
    );
}

#[test]
fn rollout_mistakes_are_named_where_they_are() {
    let cases = [
        (
            r#"rollout "r" {
  wave "a" { clusters = ["qa-*"] }
}
"#,
            "\"qa-*\" matches no cluster",
            "[\"qa-*\"]",
        ),
        (
            r#"rollout "r" {
  wave "a" { clusters = ["dev-*"] }
  wave "b" {
    clusters = ["prod-*"]
    after    = ["canry"]
  }
}
"#,
            "wave \"b\" follows \"canry\", which is not a wave written before it",
            "[\"canry\"]",
        ),
        (
            r#"rollout "r" {
  wave "a" { clusters = ["dev-*"] }
  wave "b" { clusters = ["dev-eu", "prod-*"] }
}
"#,
            "cluster \"dev-eu\" is in two waves",
            "[\"dev-eu\", \"prod-*\"]",
        ),
        (
            r#"rollout "r" {
  wave "a" {
    clusters = ["dev-*"]
    soak     = "1h"
  }
}
"#,
            "wave \"a\" has a soak but follows no wave",
            "\"1h\"",
        ),
        (
            r#"rollout "r" {
  wave "a" {
    clusters     = ["dev-*"]
    max_parallel = 0
  }
}
"#,
            "Invalid max_parallel",
            "0\n",
        ),
    ];
    for (rollout, summary, at) in cases {
        let src = fleet(rollout);
        let d = errors(&[("main.kup.hcl", &src)]);
        expect(&d, summary, "main.kup.hcl", pos(&src, at, 0));
    }
}

#[test]
fn requests_per_second_is_a_positive_number_on_cloud_providers_only() {
    let src = r#"provider "eks" {
  region              = "eu-west-1"
  requests_per_second = 8
}
"#;
    let l = ok(&[("main.kup.hcl", src)]);
    assert_eq!(l.desired.providers[0].requests_per_second, Some(8.0));
    let bad = src.replace("= 8", "= 0");
    expect(
        &errors(&[("main.kup.hcl", &bad)]),
        "Invalid requests_per_second",
        "main.kup.hcl",
        pos(&bad, "0\n", 0),
    );
    let k3s = "provider \"k3s\" {\n  requests_per_second = 8\n}\n";
    let e = expect(
        &errors(&[("main.kup.hcl", k3s)]),
        "requests_per_second is not used by provider type \"k3s\"",
        "main.kup.hcl",
        pos(k3s, "requests_per_second", 0),
    );
    assert!(
        format!("{e:?}").contains("applies only to eks, gke, aks providers"),
        "{e}"
    );
}

#[test]
fn request_and_operation_timeouts_are_durations_above_zero() {
    let src = r#"provider "gke" {
  project           = "p"
  location          = "europe-west1"
  request_timeout   = "10s"
  operation_timeout = "3h"
}
"#;
    let l = ok(&[("main.kup.hcl", src)]);
    let p = &l.desired.providers[0];
    assert_eq!(p.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(p.operation_timeout, Some(Duration::from_secs(3 * 3600)));
    for (from, what) in [
        ("\"10s\"", "Invalid request_timeout"),
        ("\"3h\"", "Invalid operation_timeout"),
    ] {
        let bad = src.replace(from, "\"0s\"");
        expect(
            &errors(&[("main.kup.hcl", &bad)]),
            what,
            "main.kup.hcl",
            pos(&bad, "\"0s\"", 0),
        );
    }
    let k3s = "provider \"k3s\" {\n  request_timeout = \"5s\"\n}\n";
    expect(
        &errors(&[("main.kup.hcl", k3s)]),
        "request_timeout is not used by provider type \"k3s\"",
        "main.kup.hcl",
        pos(k3s, "request_timeout", 0),
    );
}

#[test]
fn plain_http_is_for_this_machine_only() {
    use super::load::plain_http_off_machine as off;
    for ok in [
        "http://127.0.0.1:8080",
        "http://127.0.0.5/x",
        "HTTP://localhost:1",
        "http://[::1]:9000/",
        "https://eks.example.com",
        "https://10.0.0.5",
    ] {
        assert!(!off(ok), "{ok}");
    }
    for bad in [
        "http://10.0.0.5",
        "http://eks.internal",
        "http://user@host:80/",
        "http://127.0.0.1.evil.com",
        "http://[2001:db8::1]:80",
    ] {
        assert!(off(bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------
// backend
// ---------------------------------------------------------------------------------------

const S3: &str = "backend \"s3\" {\n  bucket         = \"team-state\"\n  key            = \"prod/kup.state.json\"\n  region         = \"eu-west-1\"\n  endpoint       = \"http://127.0.0.1:4566\"\n  dynamodb_table = \"kup-locks\"\n}\n";

#[test]
fn s3_backend_is_read_and_local_is_the_default() {
    let l = ok(&[("main.kup.hcl", &with_provider(S3))]);
    let crate::model::BackendKind::S3(s3) = &l.backend.kind else {
        panic!("{:?}", l.backend)
    };
    assert_eq!(
        (
            s3.bucket.as_str(),
            s3.key.as_str(),
            s3.dynamodb_table.as_str()
        ),
        ("team-state", "prod/kup.state.json", "kup-locks")
    );
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
    assert_eq!(s3.url(), "s3://team-state/prod/kup.state.json");
    let at = l.backend.at.clone().unwrap();
    assert_eq!((at.line, at.col), (4, 1));
    // The light loader used by `kup state` and `force-unlock` agrees, without variables.
    let tmp = tempfile::tempdir().unwrap();
    let with_var = format!("variable \"v\" {{}}\n{}", with_provider(S3));
    write(tmp.path(), &[("main.kup.hcl", &with_var)]);
    let light = load_backend(tmp.path()).unwrap();
    assert_eq!(light.kind, l.backend.kind);
    assert_eq!(light.at.map(|at| (at.line, at.col)), Some((5, 1)));

    let l = ok(&[("main.kup.hcl", &with_provider(""))]);
    assert_eq!(l.backend, crate::model::BackendSpec::default());
    let l = ok(&[(
        "main.kup.hcl",
        &with_provider("backend \"local\" {\n  path = \"state/prod.json\"\n}\n"),
    )]);
    assert_eq!(
        l.backend.kind,
        crate::model::BackendKind::LocalAt("state/prod.json".into())
    );
}

#[test]
fn s3_backend_missing_bucket_is_an_error_at_the_block() {
    let src =
        with_provider("backend \"s3\" {\n  key            = \"k\"\n  dynamodb_table = \"t\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Missing required attribute \"bucket\" in backend \"s3\"",
        "main.kup.hcl",
        (4, 1),
    );
    assert!(hint(&e).contains("bucket = \""), "{e}");
    // The light loader reports the same.
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &[("main.kup.hcl", &src)]);
    let d = load_backend(tmp.path()).unwrap_err().0;
    expect(
        &d,
        "Missing required attribute \"bucket\"",
        "main.kup.hcl",
        (4, 1),
    );

    let src = with_provider("backend \"s3\" {\n  bucket = \"b\"\n}\n");
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "Missing required attributes \"key\", \"dynamodb_table\" in backend \"s3\"",
        "main.kup.hcl",
        (4, 1),
    );
}

#[test]
fn s3_backend_unknown_attribute_suggests_the_right_one() {
    let src = with_provider(&S3.replace("dynamodb_table", "dynamo_table"));
    let d = errors(&[("main.kup.hcl", &src)]);
    let (line, col) = pos(&src, "dynamo_table", 0);
    let e = expect(&d, "Unsupported attribute", "main.kup.hcl", (line, col));
    assert!(hint(&e).contains("\"dynamodb_table\""), "{e}");
    // Unknown attribute aside, the missing table is still reported at the block.
    expect(
        &d,
        "Missing required attribute \"dynamodb_table\"",
        "main.kup.hcl",
        (4, 1),
    );
}

#[test]
fn bad_backends_are_errors_at_their_line() {
    // Plain HTTP to another machine.
    let src = with_provider(&S3.replace("127.0.0.1:4566", "minio.internal:9000"));
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "endpoint uses plain HTTP to another machine",
        "main.kup.hcl",
        pos(&src, "\"http://minio", 0),
    );
    assert!(hint(&e).contains("https://minio.internal:9000"), "{e}");
    // Variables are not allowed: the backend is read before anything is evaluated.
    let src = format!(
        "variable \"b\" {{ default = \"x\" }}\n{}",
        with_provider(&S3.replace("\"team-state\"", "var.b"))
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    expect(
        &d,
        "var.* references are not allowed here",
        "main.kup.hcl",
        pos(&src, "var.b", 0),
    );
    // Two backends.
    let src = with_provider(&format!("{S3}backend \"local\" {{}}\n"));
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Duplicate backend block",
        "main.kup.hcl",
        pos(&src, "backend \"local\"", 0),
    );
    assert!(
        e.detail
            .as_deref()
            .unwrap_or("")
            .contains("main.kup.hcl:4:1"),
        "{e}"
    );
    // An unknown type, a key naming a folder.
    let src = with_provider("backend \"s4\" {}\n");
    let e = expect(
        &errors(&[("main.kup.hcl", &src)]),
        "Unknown backend type \"s4\"",
        "main.kup.hcl",
        (4, 9),
    );
    assert!(hint(&e).contains("\"s3\""), "{e}");
    let src = with_provider(&S3.replace("prod/kup.state.json", "/prod/"));
    expect(
        &errors(&[("main.kup.hcl", &src)]),
        "Invalid state key",
        "main.kup.hcl",
        pos(&src, "\"/prod/\"", 0),
    );
}

// ---------------------------------------------------------------------------------------
// sensitive variables
// ---------------------------------------------------------------------------------------

const SENSITIVE_HOOK: &str = r#"variable "token" {
  sensitive = true
}
locals {
  header = format("Bearer %s", var.token)
  plain  = "--quick"
}
cluster "prod" {
  version = "1.31"
  hook "after_cluster" {
    command = ["./notify.sh", local.header, local.plain, "token=${var.token}"]
  }
}
"#;

fn token_opts(value: &str) -> LoadOptions {
    LoadOptions {
        env: vec![("KUP_VAR_token".into(), value.into())],
        ..Default::default()
    }
}

#[test]
fn values_derived_from_a_sensitive_variable_are_marked_and_never_serialized() {
    let src = with_provider(SENSITIVE_HOOK);
    let (_t, r) = load_files(&[("main.kup.hcl", &src)], &token_opts("s3cr3t-cfg-1"));
    let l = r.unwrap_or_else(|d| panic!("{d}"));
    let cmd = &l.desired.clusters[0].hooks[0].command;
    assert_eq!(
        cmd.args(),
        [
            "./notify.sh",
            "Bearer s3cr3t-cfg-1",
            "--quick",
            "token=s3cr3t-cfg-1"
        ]
    );
    assert_eq!(
        cmd.shown(),
        [
            "./notify.sh",
            "(sensitive value)",
            "--quick",
            "(sensitive value)"
        ]
    );
    let json = serde_json::to_string(&l.desired).unwrap();
    assert!(!json.contains("s3cr3t-cfg-1"), "{json}");
    let debug = format!("{:?}", l.desired);
    assert!(!debug.contains("s3cr3t-cfg-1"), "{debug}");
    assert!(json.contains("(sensitive value)"), "{json}");
    // What was derived is known to the redactor too.
    assert_eq!(
        crate::redact::redact("x Bearer s3cr3t-cfg-1 y"),
        "x (sensitive value) y"
    );
    // Read back, the command is equal for comparison but must be filled before it runs.
    let back: crate::model::Desired = serde_json::from_str(&json).unwrap();
    let mut cmd_back = back.clusters[0].hooks[0].command.clone();
    assert_eq!(&cmd_back, cmd);
    assert!(!cmd_back.is_filled());
    cmd_back.fill(cmd).unwrap();
    assert_eq!(cmd_back.args(), cmd.args());
}

#[test]
fn a_sensitive_value_outside_a_hook_command_is_refused_at_its_line() {
    let src = with_provider(
        r#"variable "token" {
  sensitive = true
  default   = "tok-default-xyz"
}
locals {
  derived = upper(var.token)
}
cluster "prod" {
  name    = local.derived
  version = "1.31"
}
"#,
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Sensitive value not allowed here",
        "main.kup.hcl",
        pos(&src, "local.derived", 0),
    );
    assert!(hint(&e).contains("hook"), "{e}");
    // Without the flag the same configuration loads.
    ok(&[("main.kup.hcl", &src.replace("sensitive = true\n", ""))]);
}

#[test]
fn sensitive_must_be_a_bool() {
    let src = with_provider(
        r#"variable "token" {
  sensitive = "yes"
  default   = "x"
}
"#,
    );
    let d = errors(&[("main.kup.hcl", &src)]);
    let e = expect(
        &d,
        "Incorrect attribute value type",
        "main.kup.hcl",
        pos(&src, "\"yes\"", 0),
    );
    assert!(
        e.detail.as_deref().unwrap_or("").contains("true or false"),
        "{e}"
    );
}

#[test]
fn a_validation_message_built_from_a_sensitive_value_is_not_shown() {
    let src = with_provider(
        r#"variable "token" {
  sensitive = true
  validation {
    condition     = length(var.token) > 40
    error_message = "token ${var.token} is too short"
  }
}
"#,
    );
    let d = errors_with(&[("main.kup.hcl", &src)], &token_opts("short-secret-val"));
    let text = d.iter().map(|d| format!("{d}")).collect::<String>();
    assert!(
        text.contains("Invalid value for variable \"token\""),
        "{text}"
    );
    assert!(text.contains("(sensitive value)"), "{text}");
    assert!(!text.contains("short-secret-val"), "{text}");
}

// ---------------------------------------------------------------------------------------
// TLS settings of provider blocks
// ---------------------------------------------------------------------------------------

#[test]
fn tls_settings_are_taken_where_the_client_honours_them_and_refused_elsewhere() {
    let aks = "provider \"aks\" {\n  subscription_id = \"s\"\n  resource_group = \"rg\"\n  insecure_skip_tls_verify = true\n  ca_file = \"ca.pem\"\n}\n";
    let (t, r) = load_files(
        &[
            ("main.kup.hcl", aks),
            ("ca.pem", "-----BEGIN CERTIFICATE-----\n"),
        ],
        &LoadOptions::default(),
    );
    let l = r.unwrap_or_else(|d| panic!("{d}"));
    let tls = &l.desired.providers[0].tls;
    assert!(tls.insecure_skip_tls_verify);
    let want = t.path().canonicalize().unwrap().join("ca.pem");
    assert_eq!(tls.ca_file.as_deref(), Some(want.to_str().unwrap()));

    for (src, key, why) in [
        (
            "provider \"gke\" {\n  project = \"p\"\n  location = \"l\"\n  ca_file = \"ca.pem\"\n}\n",
            "ca_file",
            "Google Cloud client library",
        ),
        (
            "provider \"gke\" {\n  project = \"p\"\n  location = \"l\"\n  insecure_skip_tls_verify = true\n}\n",
            "insecure_skip_tls_verify",
            "Google Cloud client library",
        ),
        (
            "provider \"k3s\" {\n  insecure_skip_tls_verify = true\n}\n",
            "insecure_skip_tls_verify",
            "kubeconfig",
        ),
    ] {
        let d = errors(&[("main.kup.hcl", src)]);
        let e = expect(
            &d,
            &format!("{key} is not supported by provider type"),
            "main.kup.hcl",
            pos(src, key, 0),
        );
        assert!(e.detail.as_deref().unwrap_or("").contains(why), "{e}");
    }

    let missing = "provider \"eks\" {\n  region = \"eu-west-1\"\n  ca_file = \"nope.pem\"\n}\n";
    let d = errors(&[("main.kup.hcl", missing)]);
    expect(
        &d,
        "ca_file does not exist",
        "main.kup.hcl",
        pos(missing, "\"nope.pem\"", 0),
    );
}
