//! Reading, evaluating and checking a configuration directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::edit::expr::Expression as Expr;
use hcl::edit::structure::{Attribute, Block, Body, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use sha2::{Digest, Sha256};

use super::diag::{did_you_mean_hint, Diagnostic, Diagnostics, SourceFile};
use super::eval::{self, check_refs, convert, type_name, Scope, Type};
use super::{LoadOptions, Loaded};
use crate::model::{
    AddonSpec, AddonVersionReq, BackendKind, BackendSpec, ClusterSpec, Desired, DrainSpec,
    NodeGroupSpec, ProviderSpec, S3Backend, SourceLoc, Strategy, Toleration, Unavailable,
    UpgradeWindow, VersionAlias,
};
use crate::policy::{SkewPolicy, SkewViolation};
use crate::version::Version;

/// Provider types kup knows.
pub const PROVIDER_KINDS: &[&str] = &["eks", "aks", "gke", "kubeadm", "k3s", "rke2"];

/// Providers that upgrade through system-upgrade-controller Plans.
const SUC_KINDS: &[&str] = &["k3s", "rke2"];

const CONFIG_SUFFIX: &str = ".kup.hcl";
const AUTO_VARS_SUFFIX: &str = ".auto.kupvars";
const VARS_FILE: &str = "kup.kupvars";

type Span_ = Option<Range<usize>>;

/// Where a variable's value came from.
#[derive(Clone, Debug)]
enum Origin {
    Default { file: usize, span: Span_ },
    Env(String),
    File { file: usize, span: Span_ },
    Cli(String),
}

struct VarDecl {
    name: String,
    file: usize,
    span: Span_,
    ty: Type,
    default: Option<Value>,
    default_span: Span_,
    validations: Vec<(usize, Block)>,
    sensitive: bool,
}

struct LocalDecl {
    name: String,
    file: usize,
    key_span: Span_,
    expr: Expr,
    deps: Vec<String>,
    refs_ok: bool,
    vars: Vec<String>,
}

struct Loader<'o> {
    dir: PathBuf,
    abs_dir: PathBuf,
    opts: &'o LoadOptions,
    files: Vec<SourceFile>,
    diags: Vec<Diagnostic>,
    hasher: Sha256,
    var_names: Vec<String>,
    local_names: Vec<String>,
    vars: Map<String, Value>,
    locals: Map<String, Value>,
    poisoned_vars: HashSet<String>,
    poisoned_locals: HashSet<String>,
    backend: BackendSpec,
    /// Variables declared `sensitive = true`, and locals computed from one.
    sensitive_vars: HashSet<String>,
    sensitive_locals: HashSet<String>,
}

fn loader<'o>(dir: &Path, opts: &'o LoadOptions) -> Loader<'o> {
    let abs_dir = dir
        .canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    Loader {
        dir: dir.to_path_buf(),
        abs_dir,
        opts,
        files: Vec::new(),
        diags: Vec::new(),
        hasher: Sha256::new(),
        var_names: Vec::new(),
        local_names: Vec::new(),
        vars: Map::new(),
        locals: Map::new(),
        poisoned_vars: HashSet::new(),
        poisoned_locals: HashSet::new(),
        sensitive_vars: HashSet::new(),
        sensitive_locals: HashSet::new(),
        backend: BackendSpec::default(),
    }
}

/// Only the `backend` block, for commands that read the state without evaluating the
/// configuration (`kup state`, `kup force-unlock`, applying a saved plan). Its values are
/// literals, so no variable values are needed.
pub(super) fn load_backend(dir: &Path) -> Result<BackendSpec, Diagnostics> {
    let opts = LoadOptions::default();
    let mut l = loader(dir, &opts);
    if let Some(bodies) = l.read_config_files() {
        let blocks: Vec<(usize, Block)> = bodies
            .iter()
            .flat_map(|(f, body)| {
                body.blocks()
                    .filter(|b| b.ident.as_str() == "backend" && b.labels.len() == 1)
                    .map(|b| (*f, b.clone()))
            })
            .collect();
        l.backend = l.backend(&blocks);
    }
    if l.diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(l.diags));
    }
    Ok(l.backend)
}

pub(super) fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let mut l = loader(dir, opts);
    let desired = l.run();
    let sources: Vec<(PathBuf, String)> = l
        .files
        .iter()
        .map(|f| (PathBuf::from(&f.display), f.text.clone()))
        .collect();
    // Report in source order: files as read, then line and column.
    let order: HashMap<&str, usize> = l
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.display.as_str(), i))
        .collect();
    let mut diags = std::mem::take(&mut l.diags);
    diags.sort_by_key(|d| {
        d.loc.as_ref().map(|loc| {
            (
                order.get(loc.file.as_str()).copied().unwrap_or(usize::MAX),
                loc.line,
                loc.col,
            )
        })
    });
    let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(|d| d.is_error());
    match desired {
        Some(desired) if errors.is_empty() => Ok(Loaded {
            desired,
            backend: l.backend,
            dir: l.abs_dir,
            config_hash: hex::encode(l.hasher.finalize()),
            sources,
            warnings,
        }),
        _ => {
            let mut all = errors;
            all.extend(warnings);
            if !all.iter().any(Diagnostic::is_error) {
                all.insert(
                    0,
                    Diagnostic::error("The configuration could not be loaded"),
                );
            }
            Err(Diagnostics(all))
        }
    }
}

fn display_path(dir: &Path, name: &str) -> String {
    let p = dir.join(name).display().to_string();
    p.strip_prefix("./").map(str::to_string).unwrap_or(p)
}

/// What a `version` attribute said.
enum VersionOrAlias {
    Version(Version),
    Alias(VersionAlias),
}

impl Loader<'_> {
    // -----------------------------------------------------------------------------------
    // helpers
    // -----------------------------------------------------------------------------------

    fn err_at(&mut self, f: usize, span: Span_, d: Diagnostic) {
        let (loc, span) = self.files[f].at(&span);
        self.diags.push(d.at(loc, span));
    }

    fn loc(&self, f: usize, span: &Span_) -> SourceLoc {
        self.files[f].at(span).0
    }

    fn src_text(&self, f: usize, span: &Span_) -> Option<String> {
        span.as_ref()
            .and_then(|s| self.files[f].text.get(s.clone()))
            .map(|s| s.trim().to_string())
    }

    fn hash_input(&mut self, kind: &str, name: &str, bytes: &[u8]) {
        self.hasher.update(kind.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(name.as_bytes());
        self.hasher.update([0]);
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Read a file; hashes its name and bytes. Returns the file index.
    fn read_file(&mut self, path: &Path, display: String, hash_name: &str) -> Option<usize> {
        match std::fs::read(path) {
            Ok(bytes) => {
                self.hash_input("file", hash_name, &bytes);
                match String::from_utf8(bytes) {
                    Ok(text) => {
                        self.files.push(SourceFile::new(display, text));
                        Some(self.files.len() - 1)
                    }
                    Err(e) => {
                        self.diags.push(
                            Diagnostic::error(format!("{display} is not valid UTF-8"))
                                .detail(format!(
                                    "Byte {} is not part of a UTF-8 character.",
                                    e.utf8_error().valid_up_to()
                                ))
                                .hint("save the file as UTF-8"),
                        );
                        None
                    }
                }
            }
            Err(e) => {
                self.diags.push(
                    Diagnostic::error(format!("Cannot read {display}"))
                        .detail(e.to_string())
                        .hint("check that the file exists and is readable"),
                );
                None
            }
        }
    }

    fn parse(&mut self, f: usize) -> Option<Body> {
        match hcl::edit::parser::parse_body(&self.files[f].text) {
            Ok(b) => Some(b),
            Err(e) => {
                let file = &self.files[f];
                let mut off = e.location().offset().min(file.text.len());
                while !file.text.is_char_boundary(off) {
                    off -= 1;
                }
                let end = file.text[off..]
                    .char_indices()
                    .nth(1)
                    .map(|(i, _)| off + i)
                    .unwrap_or(file.text.len());
                let loc = SourceLoc {
                    file: file.display.clone(),
                    line: e.location().line(),
                    col: e.location().column(),
                };
                let d = if e.message().contains("redefined attribute") {
                    Diagnostic::error("Duplicate attribute")
                        .detail("This attribute is already set earlier in the same block.")
                        .hint("set each attribute once; remove one of them")
                } else {
                    Diagnostic::error("Syntax error")
                        .detail(format!("The file could not be parsed: {}.", e.message()))
                        .hint(
                            "check for a missing or extra quote, brace, bracket or `=` at or just \
                             before this position",
                        )
                };
                self.diags.push(d.at(loc, Some(off..end)));
                None
            }
        }
    }

    /// Report unknown/duplicate attributes and blocks, and wrong label counts.
    fn check_schema(
        &mut self,
        f: usize,
        body: &Body,
        what: &str,
        attrs: &[&str],
        blocks: &[(&str, usize)],
    ) {
        let mut seen: HashMap<String, Span_> = HashMap::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let k = a.key.as_str();
                    if !attrs.contains(&k) {
                        let d = if blocks.iter().any(|(b, _)| *b == k) {
                            Diagnostic::error("Unsupported attribute")
                                .detail(format!("\"{k}\" is a block in {what}, not an attribute."))
                                .hint(format!("write it as a block: {k} {{ ... }}"))
                        } else {
                            Diagnostic::error("Unsupported attribute")
                                .detail(format!(
                                    "An attribute named \"{k}\" is not expected in {what}."
                                ))
                                .hint(did_you_mean_hint(k, attrs.iter().copied()).unwrap_or_else(
                                    || {
                                        if attrs.is_empty() {
                                            format!("{what} takes no attributes")
                                        } else {
                                            format!("expected one of: {}", attrs.join(", "))
                                        }
                                    },
                                ))
                        };
                        self.err_at(f, a.key.span(), d);
                    } else if let Some(first) = seen.get(k) {
                        let first = self.loc(f, first);
                        self.err_at(
                            f,
                            a.key.span(),
                            Diagnostic::error("Duplicate attribute")
                                .detail(format!(
                                    "The attribute \"{k}\" was already set at {first}."
                                ))
                                .hint("set each attribute once; remove one of them"),
                        );
                    } else {
                        seen.insert(k.to_string(), a.key.span());
                    }
                }
                Structure::Block(b) => {
                    let k = b.ident.as_str();
                    match blocks.iter().find(|(n, _)| *n == k) {
                        None => {
                            let d = if attrs.contains(&k) {
                                Diagnostic::error("Unsupported block type")
                                    .detail(format!(
                                        "\"{k}\" is an attribute in {what}, not a block."
                                    ))
                                    .hint(format!("write it as an attribute: {k} = ..."))
                            } else {
                                let names: Vec<&str> = blocks.iter().map(|(n, _)| *n).collect();
                                Diagnostic::error("Unsupported block type")
                                    .detail(format!(
                                        "Blocks of type \"{k}\" are not expected in {what}."
                                    ))
                                    .hint(
                                        did_you_mean_hint(k, names.iter().copied()).unwrap_or_else(
                                            || {
                                                if names.is_empty() {
                                                    format!("{what} takes no blocks")
                                                } else {
                                                    format!(
                                                        "blocks allowed here: {}",
                                                        names.join(", ")
                                                    )
                                                }
                                            },
                                        ),
                                    )
                            };
                            self.err_at(f, b.ident.span(), d);
                        }
                        Some((_, n)) => {
                            let n = *n;
                            if b.labels.len() < n {
                                self.err_at(
                                    f,
                                    b.ident.span(),
                                    Diagnostic::error(format!("Missing name for {k} block"))
                                        .detail(format!("A {k} block needs a label naming it."))
                                        .hint(format!("write {k} \"NAME\" {{ ... }}")),
                                );
                            } else if b.labels.len() > n {
                                let extra = b.labels[n].span();
                                let hint = if n == 0 {
                                    format!("write {k} {{ ... }} without a label")
                                } else {
                                    format!("write {k} \"NAME\" {{ ... }} with one label")
                                };
                                self.err_at(
                                    f,
                                    extra,
                                    Diagnostic::error(format!("Extra label on {k} block"))
                                        .detail(format!(
                                            "A {k} block takes {n} label{}.",
                                            if n == 1 { "" } else { "s" }
                                        ))
                                        .hint(hint),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Evaluate an expression that may refer to variables and locals. A value derived from
    /// a sensitive variable is refused: everything but a hook's command is recorded in
    /// plans and state, which must never hold a secret.
    fn value(&mut self, f: usize, e: &Expr) -> Option<Value> {
        let (v, sensitive) = self.value_marked(f, e)?;
        if sensitive {
            self.err_at(
                f,
                e.span(),
                Diagnostic::error("Sensitive value not allowed here")
                    .detail("This expression uses a variable declared sensitive = true (directly or through a local). kup records this setting in plans, the journal and the state, which never hold a secret.")
                    .hint("use sensitive values only in a hook's command arguments, or drop sensitive = true if the value is not secret"),
            );
            return None;
        }
        Some(v)
    }

    /// Does an expression with these references derive from a sensitive variable? (Like
    /// Terraform, any use taints the result: interpolation, functions, conditionals.)
    fn is_sensitive(&self, refs: &eval::Refs) -> bool {
        refs.vars.iter().any(|v| self.sensitive_vars.contains(v))
            || refs
                .locals
                .iter()
                .any(|(l, _)| self.sensitive_locals.contains(l))
    }

    /// Evaluate an expression; also say whether its value is sensitive.
    fn value_marked(&mut self, f: usize, e: &Expr) -> Option<(Value, bool)> {
        let vars = self.var_names.clone();
        let locals = self.local_names.clone();
        let scope = Scope {
            vars: Some(&vars),
            locals: Some(&locals),
            context: "here",
        };
        let mut diags = Vec::new();
        let refs = check_refs(e, &scope, &self.files[f], &mut diags);
        if !diags.is_empty() {
            self.diags.extend(diags);
            return None;
        }
        if refs.vars.iter().any(|v| self.poisoned_vars.contains(v))
            || refs
                .locals
                .iter()
                .any(|(l, _)| self.poisoned_locals.contains(l))
        {
            return None;
        }
        let sensitive = self.is_sensitive(&refs);
        let ctx = eval::context(Some(&self.vars), Some(&self.locals));
        match eval::eval(e, &ctx, &self.files[f]) {
            Ok(v) => Some((v, sensitive)),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// A hook's `command`: a list of strings, each marked sensitive when it derives from a
    /// sensitive variable. Elements of a list written out are judged one by one; a list
    /// computed as a whole is sensitive as a whole.
    fn get_command(&mut self, f: usize, body: &Body, key: &str) -> Option<crate::model::Argv> {
        let a = body.get_attribute(key)?;
        let marked: Vec<(Value, bool)> = match &a.value {
            Expr::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    match self.value_marked(f, item) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                out
            }
            other => match self.value_marked(f, other)? {
                (Value::Array(items), s) => items.into_iter().map(|v| (v, s)).collect(),
                (v, s) => vec![(v, s)],
            },
        };
        if !marked.iter().all(|(v, _)| matches!(v, Value::String(_))) {
            let shown: Vec<Value> = marked
                .into_iter()
                .map(|(v, s)| {
                    if s {
                        Value::String(crate::redact::SENSITIVE.into())
                    } else {
                        v
                    }
                })
                .collect();
            self.wrong_type(
                f,
                a,
                "a list of strings",
                &Value::Array(shown),
                format!("write {key} = [\"...\", \"...\"]"),
            );
            return None;
        }
        let (args, sensitive): (Vec<String>, Vec<bool>) = marked
            .into_iter()
            .map(|(v, s)| match v {
                Value::String(t) => {
                    if s {
                        crate::redact::register(&t);
                    }
                    (t, s)
                }
                _ => unreachable!("checked above"),
            })
            .unzip();
        Some(crate::model::Argv::new(args, sensitive))
    }

    /// Evaluate an expression that may not refer to anything (vars files, defaults).
    fn literal(&mut self, f: usize, e: &Expr, context: &str) -> Option<Value> {
        let scope = Scope {
            vars: None,
            locals: None,
            context,
        };
        let mut diags = Vec::new();
        check_refs(e, &scope, &self.files[f], &mut diags);
        if !diags.is_empty() {
            self.diags.extend(diags);
            return None;
        }
        let ctx = eval::context(None, None);
        match eval::eval(e, &ctx, &self.files[f]) {
            Ok(v) => Some(v),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn wrong_type(&mut self, f: usize, a: &Attribute, want: &str, got: &Value, hint: String) {
        self.err_at(
            f,
            a.value.span(),
            Diagnostic::error("Incorrect attribute value type")
                .detail(format!(
                    "\"{}\" must be {want}, but this is a {}{}.",
                    a.key.as_str(),
                    type_name(got),
                    short_value(got)
                ))
                .hint(hint),
        );
    }

    fn get_string(&mut self, f: usize, body: &Body, key: &str) -> Option<String> {
        let a = body.get_attribute(key)?;
        match self.value(f, &a.value)? {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => {
                let shown = match &other {
                    Value::Number(_) | Value::Bool(_) => self
                        .src_text(f, &a.value.span())
                        .filter(|t| !t.contains('"'))
                        .unwrap_or_else(|| other.to_string()),
                    _ => "...".to_string(),
                };
                self.wrong_type(
                    f,
                    a,
                    "a string",
                    &other,
                    format!("quote it: {key} = \"{shown}\""),
                );
                None
            }
        }
    }

    /// A list of strings (`versions = ["v1.30.9+k3s1", ...]`).
    fn get_string_list(&mut self, f: usize, body: &Body, key: &str) -> Option<Vec<String>> {
        let a = body.get_attribute(key)?;
        match self.value(f, &a.value)? {
            Value::Array(items) if items.iter().all(|i| matches!(i, Value::String(_))) => Some(
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
            other => {
                self.wrong_type(
                    f,
                    a,
                    "a list of strings",
                    &other,
                    format!("write {key} = [\"...\", \"...\"]"),
                );
                None
            }
        }
    }

    /// Host names for SSH: letters, digits, `.`, `-`, `_`, `:` (IPv6), not starting with `-`,
    /// so no host can become an ssh option or shell syntax.
    fn get_hosts(&mut self, f: usize, body: &Body, key: &str) -> Option<Vec<String>> {
        let hosts = self.get_string_list(f, body, key)?;
        let span = body.get_attribute(key).and_then(|a| a.value.span());
        let mut ok = true;
        for h in &hosts {
            if let Err(why) = check_host(h) {
                ok = false;
                self.err_at(
                    f,
                    span.clone(),
                    Diagnostic::error(format!("{h:?} is not a host name"))
                        .detail(why)
                        .hint("write a host name, an IP address, or an alias from your ssh config, e.g. \"cp1.lab\""),
                );
            }
        }
        if let Some(d) = hosts
            .iter()
            .enumerate()
            .find_map(|(i, h)| hosts[..i].contains(h).then_some(h))
        {
            ok = false;
            self.err_at(
                f,
                span,
                Diagnostic::error(format!("host {d:?} is listed twice"))
                    .detail("Every host is upgraded once, in one place.")
                    .hint("remove the second entry"),
            );
        }
        ok.then_some(hosts)
    }

    /// The kubeadm settings of a cluster block (`ssh`, `control_plane`, `cni_upgrade`
    /// blocks and attributes); `None` for other providers.
    fn kubeadm(
        &mut self,
        f: usize,
        cluster: &Block,
        kind: Option<&str>,
        label: &str,
    ) -> Option<crate::model::KubeadmSpec> {
        let body = &cluster.body;
        for key in ["etcd_graceful_restart", "certificate_renewal", "recover"] {
            self.only_for(f, body, key, kind, &["kubeadm"]);
        }
        if kind != Some("kubeadm") {
            for block in ["ssh", "control_plane", "cni_upgrade"] {
                if let (Some(b), Some(k)) = (body.get_blocks(block).next(), kind) {
                    self.err_at(
                        f,
                        b.ident.span(),
                        Diagnostic::error(format!("{block} is not used by provider type \"{k}\""))
                            .detail("ssh, control_plane and cni_upgrade describe the hosts of a kubeadm cluster.")
                            .hint(format!("remove the {block} block")),
                    );
                }
            }
            return None;
        }
        let mut spec = crate::model::KubeadmSpec {
            certificate_renewal: true,
            ..Default::default()
        };
        if let Some(s) = body.get_blocks("ssh").next() {
            self.check_schema(
                f,
                &s.body,
                "an ssh block",
                &[
                    "user",
                    "private_key",
                    "port",
                    "sudo",
                    "config",
                    "known_hosts",
                ],
                &[],
            );
            spec.ssh.user = self.get_string(f, &s.body, "user");
            if let (Some(u), Some(a)) = (&spec.ssh.user, s.body.get_attribute("user")) {
                if u.is_empty()
                    || u.starts_with('-')
                    || !u
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    self.err_at(
                        f,
                        a.value.span(),
                        Diagnostic::error(format!("{u:?} is not a user name"))
                            .detail("SSH user names are letters, digits, `.`, `_` and `-`.")
                            .hint("write user = \"ops\""),
                    );
                }
            }
            spec.ssh.private_key = self.get_string(f, &s.body, "private_key");
            spec.ssh.config = self.get_string(f, &s.body, "config");
            spec.ssh.known_hosts = self.get_string(f, &s.body, "known_hosts");
            spec.ssh.sudo = self.get_bool(f, &s.body, "sudo").unwrap_or(true);
            if let Some(a) = s.body.get_attribute("port") {
                match self.get_number(f, &s.body, "port", "22") {
                    Some(p) if (1.0..=65535.0).contains(&p) && p.fract() == 0.0 => {
                        spec.ssh.port = Some(p as u16)
                    }
                    Some(p) => self.err_at(
                        f,
                        a.value.span(),
                        Diagnostic::error(format!("port {p} is not a TCP port"))
                            .detail("SSH ports are whole numbers from 1 to 65535.")
                            .hint("write port = 22"),
                    ),
                    None => {}
                }
            }
        }
        match body.get_blocks("control_plane").next() {
            Some(cp) => {
                self.check_schema(f, &cp.body, "a control_plane block", &["hosts"], &[]);
                spec.control_plane_hosts = self.get_hosts(f, &cp.body, "hosts").unwrap_or_default();
                if spec.control_plane_hosts.is_empty() && cp.body.get_attribute("hosts").is_none() {
                    self.err_at(
                        f,
                        cp.ident.span(),
                        Diagnostic::error("Missing required attribute \"hosts\" in control_plane")
                            .detail("kup runs kubeadm on the control-plane hosts in this order; the first runs `kubeadm upgrade apply`.")
                            .hint("add hosts = [\"cp1.lab\", \"cp2.lab\", \"cp3.lab\"]"),
                    );
                }
            }
            None => self.err_at(
                f,
                cluster.ident.span(),
                Diagnostic::error(format!("cluster \"{label}\" has no control_plane block"))
                    .detail(
                        "A kubeadm cluster's control plane runs on hosts kup must reach over SSH.",
                    )
                    .hint("add control_plane { hosts = [\"cp1.lab\"] }"),
            ),
        }
        if let Some(c) = body.get_blocks("cni_upgrade").next() {
            self.check_schema(f, &c.body, "a cni_upgrade block", &["command"], &[]);
            spec.cni_upgrade = self
                .get_string_list(f, &c.body, "command")
                .unwrap_or_default();
            if spec.cni_upgrade.is_empty() {
                self.err_at(
                    f,
                    c.ident.span(),
                    Diagnostic::error("cni_upgrade has no command")
                        .detail("The command runs on the first control-plane host after `kubeadm upgrade apply`, as an argument list (never through a shell).")
                        .hint("add command = [\"kubectl\", \"apply\", \"-f\", \"/etc/cni/calico.yaml\"]"),
                );
            }
        }
        spec.etcd_graceful_restart = self
            .get_bool(f, body, "etcd_graceful_restart")
            .unwrap_or(false);
        spec.certificate_renewal = self
            .get_bool(f, body, "certificate_renewal")
            .unwrap_or(true);
        if let Some(a) = body.get_attribute("recover") {
            match self.get_string(f, body, "recover").as_deref() {
                Some("force") => spec.force = true,
                Some(other) => self.err_at(
                    f,
                    a.value.span(),
                    Diagnostic::error(format!("recover = \"{other}\" is not a choice"))
                        .detail("recover = \"force\" re-runs `kubeadm upgrade apply --force` on the same version after a failed apply.")
                        .hint("write recover = \"force\", or remove recover"),
                ),
                None => {}
            }
        }
        Some(spec)
    }

    /// `hook "POINT" { command = [...], timeout = "5m" }` blocks, in file order.
    fn hooks(&mut self, f: usize, body: &Body) -> Vec<crate::model::HookSpec> {
        let mut out = Vec::new();
        for h in body.get_blocks("hook").filter(|b| b.labels.len() == 1) {
            let point = h.labels[0].as_str().to_string();
            self.check_schema(
                f,
                &h.body,
                &format!("hook \"{point}\""),
                &["command", "timeout"],
                &[],
            );
            if !crate::model::HOOK_POINTS.contains(&point.as_str()) {
                self.err_at(
                    f,
                    h.labels[0].span(),
                    Diagnostic::error(format!("Unknown hook point \"{point}\""))
                        .detail(format!(
                            "Hooks run at: {}.",
                            crate::model::HOOK_POINTS.join(", ")
                        ))
                        .hint(
                            did_you_mean_hint(&point, crate::model::HOOK_POINTS.iter().copied())
                                .unwrap_or_else(|| "use one of the hook points above".into()),
                        ),
                );
                continue;
            }
            let command = match self.get_command(f, &h.body, "command") {
                Some(c) => c,
                // Its expression failed and said why.
                None if h.body.get_attribute("command").is_some() => continue,
                None => Default::default(),
            };
            if command.is_empty() {
                self.err_at(
                    f,
                    h.ident.span(),
                    Diagnostic::error(format!("hook \"{point}\" has no command"))
                        .detail("A hook runs a command (an argument list, not through a shell) on the machine running kup.")
                        .hint("add command = [\"./smoke-test.sh\", \"--quick\"]"),
                );
                continue;
            }
            let timeout = self
                .get_duration(f, &h.body, "timeout")
                .unwrap_or(Duration::from_secs(5 * 60));
            out.push(crate::model::HookSpec {
                point,
                command,
                timeout,
            });
        }
        out
    }

    /// `preflight { manifests = ["k8s/"], removed_apis = "block" | "warn" | "off", health,
    /// addons, insights }`.
    fn preflight(&mut self, f: usize, body: &Body) -> crate::model::Preflight {
        let mut out = crate::model::Preflight::default();
        let Some(p) = body.get_blocks("preflight").next() else {
            return out;
        };
        self.check_schema(
            f,
            &p.body,
            "a preflight block",
            &["manifests", "removed_apis", "health", "addons", "insights"],
            &[],
        );
        out.manifests = self
            .get_string_list(f, &p.body, "manifests")
            .unwrap_or_default();
        let what = [
            (
                "removed_apis",
                "what an object at an API the upgrade removes does to the plan",
            ),
            (
                "health",
                "what an unhealthy cluster (API server not ready, nodes NotReady) does to the plan",
            ),
            (
                "addons",
                "what an unmanaged add-on that is not compatible with a hop does to the plan",
            ),
            (
                "insights",
                "what a failing provider upgrade check (EKS upgrade insight) does to the plan",
            ),
        ];
        for (key, detail) in what {
            let Some(mode) = self.check_mode(f, &p.body, key, detail) else {
                continue;
            };
            match key {
                "removed_apis" => out.removed_apis = mode,
                "health" => out.health = mode,
                "addons" => out.addons = mode,
                _ => out.insights = mode,
            }
        }
        out
    }

    /// `KEY = "block" | "warn" | "off"`.
    fn check_mode(
        &mut self,
        f: usize,
        body: &Body,
        key: &str,
        detail: &str,
    ) -> Option<crate::model::CheckMode> {
        use crate::model::CheckMode;
        let a = body.get_attribute(key)?;
        Some(match self.get_string(f, body, key).as_deref() {
            Some("block") | None => CheckMode::Block,
            Some("warn") => CheckMode::Warn,
            Some("off") => CheckMode::Off,
            Some(other) => {
                self.err_at(
                    f,
                    a.value.span(),
                    Diagnostic::error(format!("{key} = \"{other}\" is not a choice"))
                        .detail(format!("{key} says {detail}."))
                        .hint(
                            did_you_mean_hint(other, ["block", "warn", "off"]).unwrap_or_else(|| {
                                "write \"block\" (refuse the plan, the default), \"warn\" or \"off\"".into()
                            }),
                        ),
                );
                CheckMode::Block
            }
        })
    }

    /// `postflight { enabled = true, smoke_pod = false, smoke_image, namespace, timeout }`.
    fn postflight(&mut self, f: usize, body: &Body) -> crate::model::Postflight {
        let mut out = crate::model::Postflight::default();
        let Some(p) = body.get_blocks("postflight").next() else {
            return out;
        };
        self.check_schema(
            f,
            &p.body,
            "a postflight block",
            &[
                "enabled",
                "smoke_pod",
                "smoke_image",
                "namespace",
                "timeout",
            ],
            &[],
        );
        if let Some(v) = self.get_bool(f, &p.body, "enabled") {
            out.enabled = v;
        }
        if let Some(v) = self.get_bool(f, &p.body, "smoke_pod") {
            out.smoke_pod = v;
        }
        if let Some(v) = self.get_string(f, &p.body, "smoke_image") {
            out.smoke_image = v;
        }
        if let Some(v) = self.get_string(f, &p.body, "namespace") {
            out.namespace = v;
        }
        if let Some(v) = self.get_duration(f, &p.body, "timeout") {
            out.timeout = v;
        }
        out
    }

    /// An attribute that only some provider types use: an error naming them otherwise.
    fn only_for(&mut self, f: usize, body: &Body, key: &str, kind: Option<&str>, kinds: &[&str]) {
        let Some(kind) = kind else { return };
        if kinds.contains(&kind) {
            return;
        }
        if let Some(a) = body.get_attribute(key) {
            self.err_at(
                f,
                a.key.span(),
                Diagnostic::error(format!("{key} is not used by provider type \"{kind}\""))
                    .detail(format!(
                        "{key} applies only to {} providers.",
                        kinds.join(", ")
                    ))
                    .hint(format!("remove {key}")),
            );
        }
    }

    /// `insecure_skip_tls_verify` and `ca_file` of a provider block, where its clients can
    /// honour them: refused at their line, with the reason, where they cannot.
    fn tls_settings(&mut self, f: usize, body: &Body, kind: &str) -> crate::model::TlsSettings {
        let insecure = self
            .get_bool(f, body, "insecure_skip_tls_verify")
            .unwrap_or(false);
        let ca_file = self.get_string(f, body, "ca_file");
        let refuse = |l: &mut Self, key: &str, why: &str, hint: &str| {
            if let Some(a) = body.get_attribute(key) {
                l.err_at(
                    f,
                    a.key.span(),
                    Diagnostic::error(format!(
                        "{key} is not supported by provider type \"{kind}\""
                    ))
                    .detail(why.to_string())
                    .hint(hint.to_string()),
                );
            }
        };
        match kind {
            "gke" => {
                let why = "The Google Cloud client library builds its own HTTPS client and offers no setting to skip certificate verification or trust another CA.";
                let hint = "remove it; to trust a TLS-inspecting proxy, add its CA to the system's trust store (or SSL_CERT_FILE)";
                refuse(self, "insecure_skip_tls_verify", why, hint);
                refuse(self, "ca_file", why, hint);
                return Default::default();
            }
            "kubeadm" | "k3s" | "rke2" => {
                let why = "kup reaches these clusters through their kubeconfig, which has its own TLS settings.";
                let hint = "set insecure-skip-tls-verify: true or certificate-authority in the kubeconfig's cluster entry; kup honours both";
                refuse(self, "insecure_skip_tls_verify", why, hint);
                refuse(self, "ca_file", why, hint);
                return Default::default();
            }
            _ => {}
        }
        let ca_file = ca_file.and_then(|rel| {
            let abs = self.abs_dir.join(crate::fsutil::expand_tilde(&rel));
            if abs.is_file() {
                Some(abs.display().to_string())
            } else {
                let span = body.get_attribute("ca_file").and_then(|a| a.value.span());
                self.err_at(
                    f,
                    span,
                    Diagnostic::error("ca_file does not exist")
                        .detail(format!("{} is not a file.", abs.display()))
                        .hint("point ca_file at a PEM file of CA certificates (paths are relative to the configuration directory)"),
                );
                None
            }
        });
        crate::model::TlsSettings {
            insecure_skip_tls_verify: insecure,
            ca_file,
        }
    }

    fn get_bool(&mut self, f: usize, body: &Body, key: &str) -> Option<bool> {
        let a = body.get_attribute(key)?;
        match self.value(f, &a.value)? {
            Value::Bool(b) => Some(b),
            Value::Null => None,
            other => {
                self.wrong_type(
                    f,
                    a,
                    "a bool",
                    &other,
                    format!("write {key} = true or {key} = false, without quotes"),
                );
                None
            }
        }
    }

    fn get_number(&mut self, f: usize, body: &Body, key: &str, example: &str) -> Option<f64> {
        let a = body.get_attribute(key)?;
        let v = self.value(f, &a.value)?;
        let n = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => eval::parse_number(s).and_then(|n| n.as_f64()),
            Value::Null => return None,
            _ => None,
        };
        if n.is_none() {
            self.wrong_type(
                f,
                a,
                "a number",
                &v,
                format!("write a number without quotes, e.g. {key} = {example}"),
            );
        }
        n
    }

    fn get_duration(&mut self, f: usize, body: &Body, key: &str) -> Option<Duration> {
        let a = body.get_attribute(key)?;
        let v = self.value(f, &a.value)?;
        match &v {
            Value::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err_at(
                        f,
                        a.value.span(),
                        Diagnostic::error("Invalid duration")
                            .detail(format!("\"{s}\" is not a duration: {e}."))
                            .hint(format!(
                                "write a number with a unit, e.g. {key} = \"15m\", \"30s\" or \"1h30m\""
                            )),
                    );
                    None
                }
            },
            Value::Null => None,
            _ => {
                let shown = self.src_text(f, &a.value.span()).unwrap_or_default();
                let hint = if matches!(v, Value::Number(_)) {
                    format!(
                        "durations need a unit and quotes, e.g. {key} = \"{shown}s\" or \"15m\""
                    )
                } else {
                    format!("write a duration string, e.g. {key} = \"15m\"")
                };
                self.wrong_type(f, a, "a duration string", &v, hint);
                None
            }
        }
    }

    /// Parse a version attribute; errors at the attribute's value.
    fn get_version(&mut self, f: usize, body: &Body, key: &str) -> Option<(Version, SourceLoc)> {
        match self.get_version_or_alias(f, body, key, false)? {
            (VersionOrAlias::Version(v), loc) => Some((v, loc)),
            (VersionOrAlias::Alias(_), _) => None,
        }
    }

    /// A version, or with `aliases` also `"latest"` / `"-"` (resolved at plan time).
    fn get_version_or_alias(
        &mut self,
        f: usize,
        body: &Body,
        key: &str,
        aliases: bool,
    ) -> Option<(VersionOrAlias, SourceLoc)> {
        let a = body.get_attribute(key)?;
        let span = a.value.span();
        let v = self.value(f, &a.value)?;
        match v {
            Value::String(s) if aliases && (s == "latest" || s == "-") => Some((
                VersionOrAlias::Alias(if s == "latest" {
                    VersionAlias::Latest
                } else {
                    VersionAlias::ProviderDefault
                }),
                self.loc(f, &span),
            )),
            Value::String(s) if s == "latest" || s == "-" => {
                self.err_at(
                    f,
                    span,
                    Diagnostic::error("Version alias on a node group")
                        .detail(format!(
                            "\"{s}\" names a control-plane version the provider offers; a node group follows its cluster's version when it has none of its own."
                        ))
                        .hint("remove version from the node group, or write a minor like \"1.31\""),
                );
                None
            }
            Value::String(s) => match s.parse::<Version>() {
                Ok(ver) => Some((VersionOrAlias::Version(ver), self.loc(f, &span))),
                Err(e) => {
                    let hint = match e {
                        crate::version::VersionError::UnknownMajor { .. } => {
                            "Kubernetes versions are 1.MINOR or 1.MINOR.PATCH, e.g. \"1.31\" or \"1.31.2\""
                        }
                        _ if aliases => "write MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. \"1.31\" or \"1.31.2\", or \"latest\" (the newest the provider offers) or \"-\" (its default)",
                        _ => "write MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. \"1.31\" or \"1.31.2\"",
                    };
                    self.err_at(
                        f,
                        span,
                        Diagnostic::error("Invalid Kubernetes version")
                            .detail(format!("{e}."))
                            .hint(hint),
                    );
                    None
                }
            },
            Value::Number(_) => {
                let shown = self
                    .src_text(f, &span)
                    .filter(|t| t.chars().all(|c| c.is_ascii_digit() || c == '.'))
                    .unwrap_or_else(|| v.to_string());
                self.err_at(
                    f,
                    span,
                    Diagnostic::error("Incorrect attribute value type")
                        .detail(format!(
                            "\"{key}\" must be a string: as a number, {shown} loses its meaning \
                             (1.30 would be read as 1.3)."
                        ))
                        .hint(format!("quote it: {key} = \"{shown}\"")),
                );
                None
            }
            other => {
                self.wrong_type(
                    f,
                    a,
                    "a version string",
                    &other,
                    format!("write {key} = \"1.31\" (or another version)"),
                );
                None
            }
        }
    }

    /// `max_unavailable` / `max_surge`: a count >= 0 or "N%" with N in 1..=100.
    fn get_unavailable(
        &mut self,
        f: usize,
        body: &Body,
        key: &str,
    ) -> Result<Option<Unavailable>, ()> {
        let Some(a) = body.get_attribute(key) else {
            return Ok(None);
        };
        let span = a.value.span();
        let Some(v) = self.value(f, &a.value) else {
            return Err(());
        };
        let bad = |this: &mut Self, detail: String| {
            this.err_at(
                f,
                span.clone(),
                Diagnostic::error(format!("Invalid {key}"))
                    .detail(detail)
                    .hint(format!(
                        "write a whole number of nodes (e.g. {key} = 1) or a percentage from 1% to 100% (e.g. {key} = \"25%\")"
                    )),
            );
            Err(())
        };
        match &v {
            Value::Number(n) => match n.as_f64() {
                Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => {
                    Ok(Some(Unavailable::Count(x as u32)))
                }
                _ => bad(
                    self,
                    format!("{n} is not a whole number of nodes (0 or more)."),
                ),
            },
            Value::String(s) => {
                let t = s.trim();
                if let Some(p) = t.strip_suffix('%') {
                    match p.trim().parse::<u32>() {
                        Ok(p) if (1..=100).contains(&p) => Ok(Some(Unavailable::Percent(p))),
                        Ok(p) => bad(
                            self,
                            format!("{p}% is out of range: a percentage must be 1%..100%."),
                        ),
                        Err(_) => bad(self, format!("\"{s}\" is not a percentage.")),
                    }
                } else if let Ok(n) = t.parse::<u32>() {
                    Ok(Some(Unavailable::Count(n)))
                } else {
                    bad(
                        self,
                        format!("\"{s}\" is neither a node count nor a percentage."),
                    )
                }
            }
            Value::Null => Ok(None),
            other => bad(
                self,
                format!("A {} is not a count or a percentage.", type_name(other)),
            ),
        }
    }

    // -----------------------------------------------------------------------------------
    // the run
    // -----------------------------------------------------------------------------------

    /// Read and parse every configuration file, in name order (None: none to read).
    fn read_config_files(&mut self) -> Option<Vec<(usize, Body)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.diags.push(
                    Diagnostic::error(format!(
                        "Cannot read configuration directory {}",
                        self.dir.display()
                    ))
                    .detail(e.to_string())
                    .hint("pass the directory that holds your *.kup.hcl files"),
                );
                return None;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let config_names: Vec<&String> = names
            .iter()
            .filter(|n| n.ends_with(CONFIG_SUFFIX))
            .collect();
        if config_names.is_empty() {
            self.diags.push(
                Diagnostic::error(format!(
                    "No configuration files in {}",
                    self.dir.display()
                ))
                .detail(format!(
                    "kup reads every *{CONFIG_SUFFIX} file in the configuration directory ({}); there are none.",
                    self.abs_dir.display()
                ))
                .hint("create main.kup.hcl there, or point kup at the directory that holds your configuration"),
            );
            return None;
        }
        let mut bodies: Vec<(usize, Body)> = Vec::new();
        for name in config_names {
            let display = display_path(&self.dir, name);
            let path = self.dir.join(name);
            if let Some(f) = self.read_file(&path, display, name) {
                if let Some(b) = self.parse(f) {
                    bodies.push((f, b));
                }
            }
        }
        Some(bodies)
    }

    fn run(&mut self) -> Option<Desired> {
        // 1. Configuration files.
        let bodies = self.read_config_files()?;

        // 2. Top-level structure.
        let mut var_blocks: Vec<(usize, Block)> = Vec::new();
        let mut local_attrs: Vec<(usize, Attribute)> = Vec::new();
        let mut providers: Vec<(usize, Block)> = Vec::new();
        let mut clusters: Vec<(usize, Block)> = Vec::new();
        let mut rollouts: Vec<(usize, Block)> = Vec::new();
        let mut backends: Vec<(usize, Block)> = Vec::new();
        for (f, body) in &bodies {
            let f = *f;
            self.check_schema(
                f,
                body,
                "the top level of a kup configuration",
                &[],
                &[
                    ("variable", 1),
                    ("locals", 0),
                    ("provider", 1),
                    ("cluster", 1),
                    ("rollout", 1),
                    ("backend", 1),
                ],
            );
            for b in body.blocks() {
                match b.ident.as_str() {
                    "variable" if b.labels.len() == 1 => var_blocks.push((f, b.clone())),
                    "locals" if b.labels.is_empty() => {
                        for s in b.body.iter() {
                            match s {
                                Structure::Attribute(a) => local_attrs.push((f, a.clone())),
                                Structure::Block(inner) => self.err_at(
                                    f,
                                    inner.ident.span(),
                                    Diagnostic::error("Unsupported block type")
                                        .detail("A locals block holds only attributes.")
                                        .hint(format!(
                                            "write {} = ... instead",
                                            inner.ident.as_str()
                                        )),
                                ),
                            }
                        }
                    }
                    "provider" if b.labels.len() == 1 => providers.push((f, b.clone())),
                    "cluster" if b.labels.len() == 1 => clusters.push((f, b.clone())),
                    "rollout" if b.labels.len() == 1 => rollouts.push((f, b.clone())),
                    "backend" if b.labels.len() == 1 => backends.push((f, b.clone())),
                    _ => {}
                }
            }
        }

        // 3. Variables and their values.
        let decls = self.declare_variables(&var_blocks);
        self.var_names = decls.iter().map(|d| d.name.clone()).collect();
        self.assign_variables(&decls);

        // 4. Locals.
        self.evaluate_locals(local_attrs);

        self.backend = self.backend(&backends);

        // 5. Providers and clusters.
        let providers = self.providers(&providers);
        let clusters = self.clusters(&clusters, &providers);
        let rollouts = self.rollouts(&rollouts, &clusters);
        Some(Desired {
            providers,
            clusters,
            rollouts,
        })
    }

    // -----------------------------------------------------------------------------------
    // backend
    // -----------------------------------------------------------------------------------

    /// A backend attribute: a literal string (like Terraform, no variables: the backend is
    /// needed before anything is evaluated), or None when absent or wrong (reported).
    fn backend_string(&mut self, f: usize, body: &Body, key: &str) -> Option<String> {
        let a = body.get_attribute(key)?;
        match self.literal(f, &a.value, "in a backend block")? {
            Value::String(s) if !s.trim().is_empty() => Some(s),
            Value::String(_) => {
                self.err_at(
                    f,
                    a.value.span(),
                    Diagnostic::error(format!("Empty {key}"))
                        .detail(format!("The backend's \"{key}\" is empty."))
                        .hint(format!("set {key} = \"...\" or remove the attribute")),
                );
                None
            }
            other => {
                self.wrong_type(
                    f,
                    a,
                    "a string",
                    &other,
                    format!("quote it: {key} = \"...\""),
                );
                None
            }
        }
    }

    fn backend(&mut self, blocks: &[(usize, Block)]) -> BackendSpec {
        let Some((f, b)) = blocks.first() else {
            return BackendSpec::default();
        };
        let f = *f;
        let at = self.loc(f, &b.ident.span());
        for (g, other) in &blocks[1..] {
            self.err_at(
                *g,
                other.ident.span(),
                Diagnostic::error("Duplicate backend block")
                    .detail(format!(
                        "A backend is already configured at {at}; the state lives in one place."
                    ))
                    .hint("keep one backend block and remove the others"),
            );
        }
        let kind = b.labels[0].as_str().to_string();
        let spec = |kind| BackendSpec {
            kind,
            at: Some(at.clone()),
        };
        match kind.as_str() {
            "local" => {
                self.check_schema(f, &b.body, "backend \"local\"", &["path"], &[]);
                match self.backend_string(f, &b.body, "path") {
                    Some(p) => spec(BackendKind::LocalAt(p)),
                    None => spec(BackendKind::Local),
                }
            }
            "s3" => {
                const ATTRS: &[&str] = &[
                    "bucket",
                    "key",
                    "region",
                    "endpoint",
                    "dynamodb_table",
                    "profile",
                ];
                self.check_schema(f, &b.body, "backend \"s3\"", ATTRS, &[]);
                let mut missing = Vec::new();
                let mut required = |l: &mut Self, key: &'static str| {
                    let v = l.backend_string(f, &b.body, key);
                    if b.body.get_attribute(key).is_none() {
                        missing.push(key);
                    }
                    v
                };
                let bucket = required(self, "bucket");
                let key = required(self, "key");
                let dynamodb_table = required(self, "dynamodb_table");
                if !missing.is_empty() {
                    let example = missing
                        .iter()
                        .map(|k| match *k {
                            "bucket" => "bucket = \"my-kup-state\"",
                            "key" => "key = \"prod/kup.state.json\"",
                            _ => "dynamodb_table = \"kup-locks\"",
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.err_at(
                        f,
                        b.ident.span(),
                        Diagnostic::error(format!(
                            "Missing required attribute{} {} in backend \"s3\"",
                            if missing.len() == 1 { "" } else { "s" },
                            missing.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ")
                        ))
                        .detail("The S3 backend keeps the state in a bucket under a key and locks it with a conditional write to a DynamoDB table (string partition key LockID); kup never writes shared state without that lock.")
                        .hint(format!("add {example}")),
                    );
                }
                if let (Some(k), Some(a)) = (&key, b.body.get_attribute("key")) {
                    if k.starts_with('/') || k.ends_with('/') {
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error("Invalid state key")
                                .detail(format!("The key \"{k}\" starts or ends with '/'; it names an object, not a folder."))
                                .hint(format!("write key = \"{}\"", k.trim_matches('/'))),
                        );
                    }
                }
                let endpoint = self.backend_string(f, &b.body, "endpoint");
                if let (Some(url), Some(a)) = (&endpoint, b.body.get_attribute("endpoint")) {
                    if plain_http_off_machine(url) {
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error("endpoint uses plain HTTP to another machine")
                                .detail(format!(
                                    "`{url}` would send credentials and the state unencrypted; kup speaks plain HTTP only to this machine (127.0.0.1, ::1, localhost), e.g. to a local S3-compatible test server."
                                ))
                                .hint(format!("use https://{}", url.trim_start_matches("http://"))),
                        );
                    }
                }
                let region = self.backend_string(f, &b.body, "region");
                let profile = self.backend_string(f, &b.body, "profile");
                match (bucket, key, dynamodb_table) {
                    (Some(bucket), Some(key), Some(dynamodb_table)) => {
                        spec(BackendKind::S3(S3Backend {
                            bucket,
                            key,
                            region,
                            endpoint,
                            dynamodb_table,
                            profile,
                        }))
                    }
                    _ => BackendSpec::default(),
                }
            }
            other => {
                const KINDS: &[&str] = &["local", "s3"];
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Unknown backend type \"{other}\""))
                        .detail("kup keeps its state in local files (\"local\", the default) or in S3 with DynamoDB locking (\"s3\").")
                        .hint(did_you_mean_hint(other, KINDS.iter().copied()).unwrap_or_else(|| "use backend \"local\" or backend \"s3\"".into())),
                );
                BackendSpec::default()
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // variables
    // -----------------------------------------------------------------------------------

    fn declare_variables(&mut self, blocks: &[(usize, Block)]) -> Vec<VarDecl> {
        let mut decls: Vec<VarDecl> = Vec::new();
        for (f, b) in blocks {
            let f = *f;
            let name = b.labels[0].as_str().to_string();
            let span = b.ident.span();
            self.check_schema(
                f,
                &b.body,
                &format!("variable \"{name}\""),
                &["type", "default", "description", "sensitive"],
                &[("validation", 0)],
            );
            if let Some(prev) = decls.iter().find(|d| d.name == name) {
                let first = self.loc(prev.file, &prev.span);
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Duplicate variable \"{name}\""))
                        .detail(format!("A variable named \"{name}\" was already declared at {first}."))
                        .hint("variable names must be unique across all configuration files; remove or rename one"),
                );
                continue;
            }
            if !is_identifier(&name) {
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error("Invalid variable name")
                        .detail(format!("\"{name}\" cannot be used in var.NAME references."))
                        .hint(
                            "use letters, digits, underscores and dashes, starting with a letter",
                        ),
                );
            }
            let ty = match b.body.get_attribute("type") {
                Some(a) => match eval::parse_type(&a.value, &self.files[f]) {
                    Ok(t) => t,
                    Err(d) => {
                        self.diags.push(d);
                        self.poisoned_vars.insert(name.clone());
                        Type::Any
                    }
                },
                None => Type::Any,
            };
            let mut default = None;
            let mut default_span = None;
            if let Some(a) = b.body.get_attribute("default") {
                default_span = a.value.span();
                match self.literal(f, &a.value, "in a variable's default") {
                    Some(v) => default = Some(v),
                    None => {
                        self.poisoned_vars.insert(name.clone());
                    }
                }
            }
            if let Some(a) = b.body.get_attribute("description") {
                if let Some(v) = self.literal(f, &a.value, "in a variable's description") {
                    if !matches!(v, Value::String(_)) {
                        self.wrong_type(f, a, "a string", &v, "write description = \"...\"".into());
                    }
                }
            }
            let mut sensitive = false;
            if let Some(a) = b.body.get_attribute("sensitive") {
                match self.literal(f, &a.value, "in a variable's sensitive flag") {
                    Some(Value::Bool(x)) => sensitive = x,
                    Some(other) => self.wrong_type(
                        f,
                        a,
                        "true or false",
                        &other,
                        "write sensitive = true".into(),
                    ),
                    None => {}
                }
            }
            if sensitive {
                self.sensitive_vars.insert(name.clone());
            }
            let mut validations = Vec::new();
            for v in b.body.get_blocks("validation") {
                if !v.labels.is_empty() {
                    continue;
                }
                self.check_schema(
                    f,
                    &v.body,
                    "a validation block",
                    &["condition", "error_message"],
                    &[],
                );
                let mut complete = true;
                for req in ["condition", "error_message"] {
                    if v.body.get_attribute(req).is_none() {
                        complete = false;
                        self.err_at(
                            f,
                            v.ident.span(),
                            Diagnostic::error(format!("Missing required attribute \"{req}\""))
                                .detail(
                                    "A validation block needs a condition and an error_message.",
                                )
                                .hint(if req == "condition" {
                                    format!("add condition = <a bool expression over var.{name}>")
                                } else {
                                    "add error_message = \"what a valid value looks like\""
                                        .to_string()
                                }),
                        );
                    }
                }
                if complete {
                    validations.push((f, v.clone()));
                }
            }
            decls.push(VarDecl {
                name,
                file: f,
                span,
                ty,
                default,
                default_span,
                validations,
                sensitive,
            });
        }
        decls
    }

    /// Parse a `-var`/`KUP_VAR_` value: HCL literal if it is one, otherwise the raw text.
    fn cli_value(raw: &str, ty: &Type) -> Value {
        if *ty == Type::String {
            return Value::String(raw.to_string());
        }
        let Ok(e) = hcl::edit::parser::parse_expr(raw) else {
            return Value::String(raw.to_string());
        };
        let file = SourceFile::new("<value>".into(), raw.to_string());
        let mut diags = Vec::new();
        let scope = Scope {
            vars: None,
            locals: None,
            context: "in a -var value",
        };
        check_refs(&e, &scope, &file, &mut diags);
        if !diags.is_empty() {
            return Value::String(raw.to_string());
        }
        match eval::eval(&e, &eval::context(None, None), &file) {
            // Without a declared number type, keep numbers as written ("1.30" stays "1.30").
            Ok(Value::Number(_)) if *ty != Type::Number => Value::String(raw.to_string()),
            Ok(v) => v,
            Err(_) => Value::String(raw.to_string()),
        }
    }

    fn read_vars_file(
        &mut self,
        path: &Path,
        display: String,
        hash_name: &str,
        decls: &[VarDecl],
        out: &mut Vec<(String, Value, Origin)>,
    ) {
        let Some(f) = self.read_file(path, display, hash_name) else {
            return;
        };
        let Some(body) = self.parse(f) else {
            return;
        };
        let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
        let mut seen: HashMap<String, Span_> = HashMap::new();
        for s in body.iter() {
            match s {
                Structure::Block(b) => self.err_at(
                    f,
                    b.ident.span(),
                    Diagnostic::error("Unexpected block in a variables file")
                        .detail("A variables file holds only NAME = VALUE assignments.")
                        .hint(format!("write {} = VALUE", b.ident.as_str())),
                ),
                Structure::Attribute(a) => {
                    let k = a.key.as_str().to_string();
                    if !names.contains(&k.as_str()) {
                        let display = self.files[f].display.clone();
                        self.err_at(
                            f,
                            a.key.span(),
                            Diagnostic::error("Value for undeclared variable")
                                .detail(format!(
                                    "{display} assigns \"{k}\", but no variable \"{k}\" is declared. \
                                     (Terraform only warns here; kup refuses, because a mistyped \
                                     name would silently be ignored.)"
                                ))
                                .hint(did_you_mean_hint(&k, names.iter().copied()).unwrap_or_else(
                                    || format!("declare it: variable \"{k}\" {{ ... }}, or remove this line"),
                                )),
                        );
                        continue;
                    }
                    if let Some(first) = seen.get(&k) {
                        let first = self.loc(f, first);
                        self.err_at(
                            f,
                            a.key.span(),
                            Diagnostic::error("Duplicate variable assignment")
                                .detail(format!("\"{k}\" was already assigned at {first}."))
                                .hint("assign each variable once per file"),
                        );
                        continue;
                    }
                    seen.insert(k.clone(), a.key.span());
                    match self.literal(f, &a.value, "in a variables file") {
                        Some(v) => out.push((
                            k,
                            v,
                            Origin::File {
                                file: f,
                                span: a.value.span(),
                            },
                        )),
                        None => {
                            self.poisoned_vars.insert(k);
                        }
                    }
                }
            }
        }
    }

    fn assign_variables(&mut self, decls: &[VarDecl]) {
        // Lowest precedence first; the last assignment of a name wins.
        let mut assigned: Vec<(String, Value, Origin)> = Vec::new();
        for d in decls {
            if let Some(v) = &d.default {
                assigned.push((
                    d.name.clone(),
                    v.clone(),
                    Origin::Default {
                        file: d.file,
                        span: d.default_span.clone(),
                    },
                ));
            }
        }
        let mut env: Vec<(String, String)> = self
            .opts
            .env
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("KUP_VAR_")
                    .map(|n| (n.to_string(), v.clone()))
            })
            .collect();
        env.sort();
        for (name, raw) in &env {
            self.hash_input("env", name, raw.as_bytes());
            // Like Terraform, values for undeclared variables in the environment are ignored.
            if let Some(d) = decls.iter().find(|d| d.name == *name) {
                assigned.push((
                    name.clone(),
                    Self::cli_value(raw, &d.ty),
                    Origin::Env(format!("KUP_VAR_{name}")),
                ));
            }
        }
        // Auto-loaded files from the directory.
        let mut auto: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(AUTO_VARS_SUFFIX))
                .collect(),
            Err(_) => Vec::new(),
        };
        auto.sort();
        if self.dir.join(VARS_FILE).is_file() {
            auto.insert(0, VARS_FILE.to_string());
        }
        for name in auto {
            let display = display_path(&self.dir, &name);
            let path = self.dir.join(&name);
            self.read_vars_file(&path, display, &name, decls, &mut assigned);
        }
        for p in self.opts.var_files.clone() {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            self.read_vars_file(&p, p.display().to_string(), &name, decls, &mut assigned);
        }
        for arg in self.opts.vars.clone() {
            self.hash_input("var", "", arg.as_bytes());
            let Some((name, raw)) = arg.split_once('=') else {
                self.diags.push(
                    Diagnostic::error(format!("Invalid -var option \"{arg}\""))
                        .detail("A -var option assigns one variable.")
                        .hint(format!("write -var '{arg}=VALUE'")),
                );
                continue;
            };
            let name = name.trim();
            match decls.iter().find(|d| d.name == name) {
                Some(d) => assigned.push((
                    name.to_string(),
                    Self::cli_value(raw, &d.ty),
                    Origin::Cli(arg.clone()),
                )),
                None => self.diags.push(
                    Diagnostic::error(format!("Value for undeclared variable \"{name}\""))
                        .detail(format!(
                            "-var {arg} sets a variable that no configuration file declares."
                        ))
                        .hint(
                            did_you_mean_hint(name, decls.iter().map(|d| d.name.as_str()))
                                .unwrap_or_else(|| {
                                    format!("declare it: variable \"{name}\" {{ ... }}")
                                }),
                        ),
                ),
            }
        }

        // Final values: convert, check, validate.
        let mut final_: BTreeMap<String, (Value, Origin)> = BTreeMap::new();
        for (n, v, o) in assigned {
            final_.insert(n, (v, o));
        }
        for d in decls {
            if self.poisoned_vars.contains(&d.name) {
                continue;
            }
            let Some((v, origin)) = final_.remove(&d.name) else {
                self.err_at(
                    d.file,
                    d.span.clone(),
                    Diagnostic::error(format!("No value for required variable \"{}\"", d.name))
                        .detail(format!(
                            "variable \"{}\" has no default, and no value was given.",
                            d.name
                        ))
                        .hint(format!(
                            "set it with -var '{n}=VALUE', the environment variable KUP_VAR_{n}, \
                             a line `{n} = VALUE` in kup.kupvars, or give it a default",
                            n = d.name
                        )),
                );
                self.poisoned_vars.insert(d.name.clone());
                continue;
            };
            if d.sensitive {
                // From here on, anything kup prints is checked for it.
                register_leaves(&v);
            }
            let v = match convert(v, &d.ty) {
                Ok(v) => v,
                Err(e) => {
                    let e = if d.sensitive {
                        format!("the value ({}) does not convert", crate::redact::SENSITIVE)
                    } else {
                        e
                    };
                    let d2 =
                        Diagnostic::error(format!("Invalid value for variable \"{}\"", d.name))
                            .detail(format!("The variable's type is {}: {e}.", d.ty))
                            .hint(format!("give a value of type {}", d.ty));
                    self.report_at_origin(d, &origin, d2);
                    self.poisoned_vars.insert(d.name.clone());
                    continue;
                }
            };
            if self.validate(d, &v, &origin) {
                self.vars.insert(d.name.clone(), v);
            } else {
                self.poisoned_vars.insert(d.name.clone());
            }
        }
    }

    fn report_at_origin(&mut self, d: &VarDecl, origin: &Origin, diag: Diagnostic) {
        match origin {
            Origin::Default { file, span } | Origin::File { file, span } => {
                self.err_at(*file, span.clone(), diag)
            }
            Origin::Env(k) => {
                let detail = format!(
                    "{}\nThe value came from the environment variable {k}.",
                    diag.detail.clone().unwrap_or_default()
                );
                self.err_at(d.file, d.span.clone(), diag.detail(detail))
            }
            Origin::Cli(arg) => {
                let detail = format!(
                    "{}\nThe value came from -var '{arg}'.",
                    diag.detail.clone().unwrap_or_default()
                );
                self.err_at(d.file, d.span.clone(), diag.detail(detail))
            }
        }
    }

    /// Run the variable's validation blocks; false if one failed.
    fn validate(&mut self, d: &VarDecl, value: &Value, origin: &Origin) -> bool {
        let mut ok = true;
        let only = [d.name.clone()];
        let mut this = Map::new();
        this.insert(d.name.clone(), value.clone());
        for (f, block) in &d.validations {
            let f = *f;
            let (Some(cond), Some(msg)) = (
                block.body.get_attribute("condition"),
                block.body.get_attribute("error_message"),
            ) else {
                continue;
            };
            let scope = Scope {
                vars: Some(&only),
                locals: None,
                context: "in a variable validation (only var.<this variable> may be used)",
            };
            let mut diags = Vec::new();
            check_refs(&cond.value, &scope, &self.files[f], &mut diags);
            let message_refs = check_refs(&msg.value, &scope, &self.files[f], &mut diags);
            if !diags.is_empty() {
                self.diags.extend(diags);
                ok = false;
                continue;
            }
            let ctx = eval::context(Some(&this), None);
            let result = match eval::eval(&cond.value, &ctx, &self.files[f]) {
                Ok(v) => v,
                Err(e) => {
                    self.diags.push(e);
                    ok = false;
                    continue;
                }
            };
            let message = match eval::eval(&msg.value, &ctx, &self.files[f]) {
                // Like Terraform: a message built from a sensitive value is not shown.
                Ok(Value::String(_)) if d.sensitive && !message_refs.vars.is_empty() => format!(
                    "The error message refers to var.{}, which is sensitive, so it is not shown: {}",
                    d.name,
                    crate::redact::SENSITIVE
                ),
                Ok(Value::String(s)) => s,
                Ok(other) => {
                    self.wrong_type(
                        f,
                        msg,
                        "a string",
                        &other,
                        "write error_message = \"...\"".into(),
                    );
                    ok = false;
                    continue;
                }
                Err(e) => {
                    self.diags.push(e);
                    ok = false;
                    continue;
                }
            };
            match result {
                Value::Bool(true) => {}
                Value::Bool(false) => {
                    ok = false;
                    let rule = self.loc(f, &cond.value.span());
                    let diag =
                        Diagnostic::error(format!("Invalid value for variable \"{}\"", d.name))
                            .detail(format!(
                                "{message}\nThis was checked by the validation rule at {rule}."
                            ))
                            .hint(format!(
                                "give var.{} a value that satisfies: {}",
                                d.name, message
                            ));
                    self.report_at_origin(d, origin, diag);
                }
                other => {
                    ok = false;
                    self.err_at(
                        f,
                        cond.value.span(),
                        Diagnostic::error("Invalid validation condition")
                            .detail(format!(
                                "The condition must be true or false, but it is a {}.",
                                type_name(&other)
                            ))
                            .hint("write a comparison or a call like can(regex(...)) that yields a bool"),
                    );
                }
            }
        }
        ok
    }

    // -----------------------------------------------------------------------------------
    // locals
    // -----------------------------------------------------------------------------------

    fn evaluate_locals(&mut self, attrs: Vec<(usize, Attribute)>) {
        let mut decls: Vec<LocalDecl> = Vec::new();
        for (f, a) in attrs {
            let name = a.key.as_str().to_string();
            if let Some(prev) = decls.iter().find(|d| d.name == name) {
                let first = self.loc(prev.file, &prev.key_span);
                self.err_at(
                    f,
                    a.key.span(),
                    Diagnostic::error(format!("Duplicate local value \"{name}\""))
                        .detail(format!("local.{name} was already defined at {first}."))
                        .hint("local names must be unique across all locals blocks; rename or remove one"),
                );
                continue;
            }
            decls.push(LocalDecl {
                name,
                file: f,
                key_span: a.key.span(),
                expr: a.value.clone(),
                deps: Vec::new(),
                refs_ok: true,
                vars: Vec::new(),
            });
        }
        self.local_names = decls.iter().map(|d| d.name.clone()).collect();
        let vars = self.var_names.clone();
        let locals = self.local_names.clone();
        for d in decls.iter_mut() {
            let scope = Scope {
                vars: Some(&vars),
                locals: Some(&locals),
                context: "in a local value",
            };
            let mut diags = Vec::new();
            let refs = check_refs(&d.expr, &scope, &self.files[d.file], &mut diags);
            if !diags.is_empty() {
                d.refs_ok = false;
                self.diags.extend(diags);
            }
            d.deps = refs.locals.into_iter().map(|(n, _)| n).collect();
            d.deps.dedup();
            d.vars = refs.vars.into_iter().collect();
        }
        // Topological order with cycle detection.
        let index: HashMap<String, usize> = decls
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        let mut state = vec![0u8; decls.len()]; // 0 new, 1 on stack, 2 done
        let mut order = Vec::new();
        let mut in_cycle: HashSet<usize> = HashSet::new();
        for start in 0..decls.len() {
            if state[start] != 0 {
                continue;
            }
            // Iterative DFS: (node, next dep index).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(dep) = decls[node].deps.get(*next) {
                    *next += 1;
                    let Some(&j) = index.get(dep) else { continue };
                    match state[j] {
                        0 => {
                            state[j] = 1;
                            stack.push((j, 0));
                        }
                        1 => {
                            // A cycle: the stack from j to the top.
                            let pos = stack.iter().position(|(n, _)| *n == j).unwrap_or(0);
                            let members: Vec<usize> =
                                stack[pos..].iter().map(|(n, _)| *n).collect();
                            if members.iter().all(|m| !in_cycle.contains(m)) {
                                let mut path: Vec<String> = members
                                    .iter()
                                    .map(|m| format!("local.{}", decls[*m].name))
                                    .collect();
                                path.push(format!("local.{}", decls[j].name));
                                let d = &decls[j];
                                let (f, span) = (d.file, d.key_span.clone());
                                self.err_at(
                                    f,
                                    span,
                                    Diagnostic::error("Cycle in local values")
                                        .detail(format!(
                                            "These local values refer to each other: {}.",
                                            path.join(" → ")
                                        ))
                                        .hint("break the cycle: compute one of them without referring back to the others"),
                                );
                            }
                            in_cycle.extend(members);
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        for i in order {
            let d = &decls[i];
            let name = d.name.clone();
            let bad = !d.refs_ok
                || in_cycle.contains(&i)
                || d.deps.iter().any(|x| self.poisoned_locals.contains(x))
                || d.vars.iter().any(|x| self.poisoned_vars.contains(x));
            if bad {
                self.poisoned_locals.insert(name);
                continue;
            }
            if d.vars.iter().any(|x| self.sensitive_vars.contains(x))
                || d.deps.iter().any(|x| self.sensitive_locals.contains(x))
            {
                self.sensitive_locals.insert(name.clone());
            }
            let ctx = eval::context(Some(&self.vars), Some(&self.locals));
            match eval::eval(&d.expr, &ctx, &self.files[d.file]) {
                Ok(v) => {
                    self.locals.insert(name, v);
                }
                Err(e) => {
                    self.diags.push(e);
                    self.poisoned_locals.insert(name);
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // providers
    // -----------------------------------------------------------------------------------

    fn providers(&mut self, blocks: &[(usize, Block)]) -> Vec<ProviderSpec> {
        let mut out: Vec<ProviderSpec> = Vec::new();
        for (f, b) in blocks {
            let f = *f;
            let kind = b.labels[0].as_str().to_string();
            let origin = self.loc(f, &b.ident.span());
            self.check_schema(
                f,
                &b.body,
                &format!("provider \"{kind}\""),
                &[
                    "alias",
                    "region",
                    "profile",
                    "project",
                    "location",
                    "subscription_id",
                    "resource_group",
                    "api_version",
                    "channel_server",
                    "versions",
                    "endpoint",
                    "simulate",
                    "world",
                    "speed",
                    "poll_interval",
                    "requests_per_second",
                    "request_timeout",
                    "operation_timeout",
                    "insecure_skip_tls_verify",
                    "ca_file",
                ],
                &[],
            );
            if !PROVIDER_KINDS.contains(&kind.as_str()) {
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Unknown provider type \"{kind}\""))
                        .detail(format!(
                            "kup knows these provider types: {}.",
                            PROVIDER_KINDS.join(", ")
                        ))
                        .hint(
                            did_you_mean_hint(&kind, PROVIDER_KINDS.iter().copied())
                                .unwrap_or_else(|| {
                                    format!("use one of: {}", PROVIDER_KINDS.join(", "))
                                }),
                        ),
                );
            }
            for key in ["channel_server", "versions"] {
                self.only_for(f, &b.body, key, Some(&kind), SUC_KINDS);
            }
            if let (Some(list), Some(a)) = (
                self.get_string_list(f, &b.body, "versions"),
                b.body.get_attribute("versions"),
            ) {
                for v in list {
                    if !matches!(v.parse::<Version>(), Ok(p) if p.patch.is_some()) {
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error(format!("\"{v}\" in versions is not an exact release"))
                                .detail("versions lists the exact releases kup may upgrade to, one per minor it passes through.")
                                .hint(if kind == "rke2" { "write releases like \"v1.31.4+rke2r1\"" } else { "write releases like \"v1.31.4+k3s1\"" }),
                        );
                    }
                }
            }
            let alias = self.get_string(f, &b.body, "alias");
            if let Some(a) = &alias {
                if !is_identifier(a) {
                    let span = b.body.get_attribute("alias").and_then(|a| a.value.span());
                    self.err_at(
                        f,
                        span,
                        Diagnostic::error("Invalid provider alias")
                            .detail(format!("\"{a}\" cannot be used in a provider key like {kind}.ALIAS."))
                            .hint("use letters, digits, underscores and dashes, starting with a letter"),
                    );
                }
            }
            let simulate_given = b.body.get_attribute("simulate").is_some();
            let simulate_value = self.get_bool(f, &b.body, "simulate");
            // When `simulate` itself is wrong, do not pile up errors about world and speed.
            let simulate_failed = simulate_given && simulate_value.is_none();
            let simulate = simulate_value.unwrap_or(false);
            let world_attr = b.body.get_attribute("world");
            let world_str = self.get_string(f, &b.body, "world");
            let mut world = None;
            // With an endpoint, the simulator runs elsewhere (`kup sim serve`) and owns its
            // world; only an in-process simulator needs a world file here.
            let external_sim = b.body.get_attribute("endpoint").is_some();
            // Credentials and cluster state travel over these URLs: plain HTTP only to this
            // machine (the simulator), never across a network.
            for key in ["endpoint", "channel_server"] {
                let Some(a) = b.body.get_attribute(key) else {
                    continue;
                };
                if let Some(url) = self.get_string(f, &b.body, key) {
                    if plain_http_off_machine(&url) {
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error(format!("{key} uses plain HTTP to another machine"))
                                .detail(format!(
                                    "`{url}` would send credentials and cluster details unencrypted; kup speaks plain HTTP only to this machine (127.0.0.1, ::1, localhost), e.g. to `kup sim serve`."
                                ))
                                .hint(format!("use https://{}", url.trim_start_matches("http://"))),
                        );
                    }
                }
            }
            if simulate && (!external_sim || world_attr.is_some()) {
                let rel = world_str.clone().unwrap_or_else(|| "world.hcl".to_string());
                let abs = self.abs_dir.join(&rel);
                if abs.is_file() {
                    world = Some(abs.display().to_string());
                } else {
                    let (span, hint) = match world_attr {
                        Some(a) => (
                            a.value.span(),
                            "point world at an existing file (paths are relative to the configuration directory)"
                                .to_string(),
                        ),
                        None => (
                            b.ident.span(),
                            format!(
                                "create world.hcl in {}, or set world = \"PATH\" in this block",
                                self.abs_dir.display()
                            ),
                        ),
                    };
                    if world_attr.is_none() || world_str.is_some() {
                        self.err_at(
                            f,
                            span,
                            Diagnostic::error("World file not found")
                                .detail(format!(
                                    "A simulated provider needs a world file; {} does not exist.",
                                    abs.display()
                                ))
                                .hint(hint),
                        );
                    }
                }
            } else if simulate {
                // External simulator: nothing to check.
            } else if let Some(a) = world_attr.filter(|_| !simulate_failed) {
                self.err_at(
                    f,
                    a.key.span(),
                    Diagnostic::error("world is only valid with simulate = true")
                        .detail("The world file seeds kup's simulator; a real provider does not use it.")
                        .hint("add simulate = true, or remove world"),
                );
            }
            let speed = match b.body.get_attribute("speed") {
                Some(a) => {
                    let s = self.get_number(f, &b.body, "speed", "600");
                    if simulate_failed {
                        None
                    } else if !simulate {
                        self.err_at(
                            f,
                            a.key.span(),
                            Diagnostic::error("speed is only valid with simulate = true")
                                .detail("speed sets how fast simulated time runs.")
                                .hint("add simulate = true, or remove speed"),
                        );
                        None
                    } else {
                        match s {
                            Some(x) if x > 0.0 && x.is_finite() => Some(x),
                            Some(x) => {
                                self.err_at(
                                    f,
                                    a.value.span(),
                                    Diagnostic::error("Invalid speed")
                                        .detail(format!("speed must be greater than 0, but it is {x}."))
                                        .hint("write how many simulated seconds pass per real second, e.g. speed = 600"),
                                );
                                None
                            }
                            None => None,
                        }
                    }
                }
                None => None,
            };
            let spec = ProviderSpec {
                kind: kind.clone(),
                alias,
                region: self.get_string(f, &b.body, "region"),
                profile: self.get_string(f, &b.body, "profile"),
                project: self.get_string(f, &b.body, "project"),
                location: self.get_string(f, &b.body, "location"),
                subscription_id: self.get_string(f, &b.body, "subscription_id"),
                resource_group: self.get_string(f, &b.body, "resource_group"),
                api_version: self.get_string(f, &b.body, "api_version"),
                channel_server: self.get_string(f, &b.body, "channel_server"),
                versions: self
                    .get_string_list(f, &b.body, "versions")
                    .unwrap_or_default(),
                endpoint: self.get_string(f, &b.body, "endpoint"),
                simulate,
                world,
                speed,
                poll_interval: self.get_duration(f, &b.body, "poll_interval"),
                requests_per_second: match b.body.get_attribute("requests_per_second") {
                    Some(a) => match self.get_number(f, &b.body, "requests_per_second", "10") {
                        Some(x) if x > 0.0 && x.is_finite() => Some(x),
                        Some(x) => {
                            self.err_at(
                                f,
                                a.value.span(),
                                Diagnostic::error("Invalid requests_per_second")
                                    .detail(format!("requests_per_second must be more than 0, but it is {x}."))
                                    .hint("write requests_per_second = 10, or leave it out for no limit"),
                            );
                            None
                        }
                        None => None,
                    },
                    None => None,
                },
                request_timeout: match b.body.get_attribute("request_timeout") {
                    Some(a) => match self.get_duration(f, &b.body, "request_timeout") {
                        Some(d) if d.is_zero() => {
                            self.err_at(
                                f,
                                a.value.span(),
                                Diagnostic::error("Invalid request_timeout")
                                    .detail("request_timeout must be longer than 0: a request that may never take any time always fails.")
                                    .hint("write request_timeout = \"30s\", or leave it out for 30 seconds"),
                            );
                            None
                        }
                        d => d,
                    },
                    None => None,
                },
                operation_timeout: match b.body.get_attribute("operation_timeout") {
                    Some(a) => match self.get_duration(f, &b.body, "operation_timeout") {
                        Some(d) if d.is_zero() => {
                            self.err_at(
                                f,
                                a.value.span(),
                                Diagnostic::error("Invalid operation_timeout")
                                    .detail("operation_timeout must be longer than 0: no operation finishes at once.")
                                    .hint("write operation_timeout = \"3h\", or leave it out for 6 hours"),
                            );
                            None
                        }
                        d => d,
                    },
                    None => None,
                },
                tls: self.tls_settings(f, &b.body, &kind),
                origin: Some(origin),
            };
            for key in ["requests_per_second", "request_timeout"] {
                self.only_for(f, &b.body, key, Some(kind.as_str()), &["eks", "gke", "aks"]);
            }
            if let Some(prev) = out.iter().find(|p| p.key() == spec.key()) {
                let first = prev
                    .origin
                    .clone()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                let key = spec.key();
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Duplicate provider \"{key}\""))
                        .detail(format!("A provider with key \"{key}\" was already declared at {first}."))
                        .hint(format!(
                            "give one of them an alias (alias = \"us\" makes it \"{kind}.us\") so clusters can tell them apart"
                        )),
                );
                continue;
            }
            out.push(spec);
        }
        out
    }

    // -----------------------------------------------------------------------------------
    // clusters
    // -----------------------------------------------------------------------------------

    fn clusters(
        &mut self,
        blocks: &[(usize, Block)],
        providers: &[ProviderSpec],
    ) -> Vec<ClusterSpec> {
        let mut out: Vec<ClusterSpec> = Vec::new();
        let keys: Vec<String> = providers.iter().map(ProviderSpec::key).collect();
        for (f, b) in blocks {
            let f = *f;
            let label = b.labels[0].as_str().to_string();
            let origin = self.loc(f, &b.ident.span());
            self.check_schema(
                f,
                &b.body,
                &format!("cluster \"{label}\""),
                &[
                    "provider",
                    "name",
                    "region",
                    "version",
                    "kubeconfig",
                    "context",
                    "parallel_node_groups",
                    "channel",
                    "namespace",
                    "upgrade_image",
                    "keep_plans",
                    "etcd_graceful_restart",
                    "certificate_renewal",
                    "recover",
                ],
                &[
                    ("addon", 1),
                    ("node_group", 1),
                    ("ssh", 0),
                    ("control_plane", 0),
                    ("cni_upgrade", 0),
                    ("preflight", 0),
                    ("postflight", 0),
                    ("hook", 1),
                ],
            );
            if let Some(prev) = out.iter().find(|c| c.label == label) {
                let first = prev
                    .origin
                    .clone()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Duplicate cluster \"{label}\""))
                        .detail(format!("cluster \"{label}\" was already declared at {first}."))
                        .hint("cluster labels must be unique across all configuration files; rename one"),
                );
                continue;
            }
            // provider
            let provider = match b.body.get_attribute("provider") {
                Some(a) => match self.get_string(f, &b.body, "provider") {
                    Some(p) if keys.contains(&p) => Some(p),
                    Some(p) => {
                        let hint = did_you_mean_hint(&p, keys.iter().map(String::as_str))
                            .unwrap_or_else(|| {
                                if keys.is_empty() {
                                    format!("declare it: provider \"{p}\" {{ ... }}")
                                } else {
                                    format!("declared providers: {}", keys.join(", "))
                                }
                            });
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error(format!("Unknown provider \"{p}\""))
                                .detail("A cluster's provider must name a declared provider block by its key: the type (\"eks\") or type.alias (\"eks.us\").")
                                .hint(hint),
                        );
                        None
                    }
                    None => None,
                },
                None => match keys.len() {
                    1 => Some(keys[0].clone()),
                    0 => {
                        self.err_at(
                            f,
                            b.ident.span(),
                            Diagnostic::error("No provider for this cluster")
                                .detail("No provider block is declared, so kup cannot reach this cluster.")
                                .hint("declare one, e.g. provider \"eks\" { region = \"eu-west-1\" }"),
                        );
                        None
                    }
                    _ => {
                        self.err_at(
                            f,
                            b.ident.span(),
                            Diagnostic::error("Missing required attribute \"provider\"")
                                .detail(format!(
                                    "{} providers are declared, so cluster \"{label}\" must say which one it uses.",
                                    keys.len()
                                ))
                                .hint(format!("add provider = one of: {}", keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "))),
                        );
                        None
                    }
                },
            };
            let name = self
                .get_string(f, &b.body, "name")
                .unwrap_or_else(|| label.clone());
            let region = self.get_string(f, &b.body, "region");
            let kubeconfig = self.get_string(f, &b.body, "kubeconfig");
            let context = self.get_string(f, &b.body, "context");
            let parallel = match b.body.get_attribute("parallel_node_groups") {
                Some(a) => match self.get_number(f, &b.body, "parallel_node_groups", "1") {
                    Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => x as u32,
                    Some(x) => {
                        self.err_at(
                            f,
                            a.value.span(),
                            Diagnostic::error("Invalid parallel_node_groups")
                                .detail(format!("parallel_node_groups must be a whole number of at least 1, but it is {x}."))
                                .hint("write parallel_node_groups = 1 (one group at a time) or more"),
                        );
                        1
                    }
                    None => 1,
                },
                None => 1,
            };
            let kind = provider.as_ref().and_then(|p| {
                providers
                    .iter()
                    .find(|s| &s.key() == p)
                    .map(|s| s.kind.clone())
            });
            for key in ["channel", "namespace", "upgrade_image", "keep_plans"] {
                self.only_for(f, &b.body, key, kind.as_deref(), SUC_KINDS);
            }
            let kubeadm = self.kubeadm(f, b, kind.as_deref(), &label);
            let preflight = self.preflight(f, &b.body);
            let postflight = self.postflight(f, &b.body);
            let hooks = self.hooks(f, &b.body);
            let channel = self.get_string(f, &b.body, "channel");
            let namespace = self.get_string(f, &b.body, "namespace");
            let upgrade_image = self.get_string(f, &b.body, "upgrade_image");
            let keep_plans = self.get_bool(f, &b.body, "keep_plans").unwrap_or(false);
            if let (Some(a), Some(_)) = (
                b.body.get_attribute("channel"),
                b.body.get_attribute("version"),
            ) {
                self.err_at(
                    f,
                    a.key.span(),
                    Diagnostic::error("Both version and channel are set")
                        .detail(format!("cluster \"{label}\" can follow an exact version or a release channel, not both."))
                        .hint("remove one: version = \"v1.31.4+k3s1\" pins a release, channel = \"stable\" takes the channel's release at plan time"),
                );
            }
            let version = if channel.is_some() {
                // The channel's release, known once the provider asks the channel server.
                b.body.get_attribute("channel").map(|a| {
                    (
                        VersionOrAlias::Alias(VersionAlias::ProviderDefault),
                        self.loc(f, &a.value.span()),
                    )
                })
            } else if b.body.get_attribute("version").is_none() {
                self.err_at(
                    f,
                    b.ident.span(),
                    Diagnostic::error("Missing required attribute \"version\"")
                        .detail(format!("cluster \"{label}\" must say which Kubernetes version its control plane should run."))
                        .hint(if kind.as_deref().is_some_and(|k| SUC_KINDS.contains(&k)) {
                            "add version = \"1.31\" (a minor) or an exact release like \"v1.31.4+k3s1\", or channel = \"stable\""
                        } else {
                            "add version = \"1.31\" (a minor) or an exact release like \"1.31.2\""
                        }),
                );
                None
            } else {
                self.get_version_or_alias(f, &b.body, "version", true)
            };
            // An alias stands for a version known only once the provider is read: a
            // stand-in until planner::resolve_version_aliases replaces it.
            let (version, version_alias) = match version {
                Some((VersionOrAlias::Version(v), loc)) => (Some((v, loc)), None),
                Some((VersionOrAlias::Alias(a), loc)) => {
                    (Some((Version::new(1, 0, None), loc)), Some(a))
                }
                None => (None, None),
            };

            // addons
            let mut addons: Vec<AddonSpec> = Vec::new();
            for ab in b.body.get_blocks("addon").filter(|x| x.labels.len() == 1) {
                let name = ab.labels[0].as_str().to_string();
                self.check_schema(f, &ab.body, &format!("addon \"{name}\""), &["version"], &[]);
                if let Some(prev) = addons.iter().find(|a| a.name == name) {
                    let first = prev
                        .origin
                        .clone()
                        .map(|o| o.to_string())
                        .unwrap_or_default();
                    self.err_at(
                        f,
                        ab.labels[0].span(),
                        Diagnostic::error(format!("Duplicate addon \"{name}\""))
                            .detail(format!(
                                "addon \"{name}\" was already declared in this cluster at {first}."
                            ))
                            .hint("declare each add-on once per cluster"),
                    );
                    continue;
                }
                let version = match self.get_string(f, &ab.body, "version").as_deref() {
                    None | Some("compatible") => AddonVersionReq::Compatible,
                    Some("latest") => AddonVersionReq::Latest,
                    Some(v) => AddonVersionReq::Exact(v.to_string()),
                };
                addons.push(AddonSpec {
                    name,
                    version,
                    origin: Some(self.loc(f, &ab.ident.span())),
                });
            }

            // node groups
            let mut groups: Vec<NodeGroupSpec> = Vec::new();
            for nb in b
                .body
                .get_blocks("node_group")
                .filter(|x| x.labels.len() == 1)
            {
                let cluster_version = version.as_ref().filter(|_| version_alias.is_none());
                if let Some(g) = self.node_group(
                    f,
                    nb,
                    &groups,
                    cluster_version,
                    version.as_ref(),
                    kind.as_deref(),
                ) {
                    groups.push(g);
                }
            }

            if let (Some(provider), Some((version, version_origin))) = (provider, version) {
                out.push(ClusterSpec {
                    label,
                    provider,
                    name,
                    region,
                    version,
                    version_alias,
                    addons,
                    node_groups: groups,
                    kubeconfig,
                    context,
                    parallel_node_groups: parallel,
                    channel,
                    namespace,
                    upgrade_image,
                    keep_plans,
                    kubeadm,
                    preflight: preflight.clone(),
                    postflight: postflight.clone(),
                    hooks: hooks.clone(),
                    origin: Some(origin),
                    version_origin: Some(version_origin),
                });
            } else {
                // Still remember the label so duplicates are reported.
                out.push(ClusterSpec {
                    label,
                    provider: String::new(),
                    name,
                    region,
                    version: Version::new(1, 0, None),
                    version_alias: None,
                    addons,
                    node_groups: groups,
                    kubeconfig,
                    context,
                    parallel_node_groups: parallel,
                    channel,
                    namespace,
                    upgrade_image,
                    keep_plans,
                    kubeadm,
                    preflight: preflight.clone(),
                    postflight: postflight.clone(),
                    hooks: hooks.clone(),
                    origin: Some(origin),
                    version_origin: None,
                });
                if !self.diags.iter().any(Diagnostic::is_error) {
                    self.diags
                        .push(Diagnostic::error("cluster could not be loaded"));
                }
            }
        }
        out
    }

    fn node_group(
        &mut self,
        f: usize,
        nb: &Block,
        existing: &[NodeGroupSpec],
        cluster_version: Option<&(Version, SourceLoc)>,
        // The cluster's version even when it is an alias's stand-in, to inherit.
        inherited: Option<&(Version, SourceLoc)>,
        kind: Option<&str>,
    ) -> Option<NodeGroupSpec> {
        let name = nb.labels[0].as_str().to_string();
        let origin = self.loc(f, &nb.ident.span());
        self.check_schema(
            f,
            &nb.body,
            &format!("node_group \"{name}\""),
            &[
                "version",
                "strategy",
                "max_unavailable",
                "max_surge",
                "node_soak",
                "node_selector",
                "hosts",
                "tolerations",
                "batch_soak",
                "timeout",
            ],
            &[("drain", 0), ("blue_green", 0), ("window", 0)],
        );
        for key in ["tolerations", "batch_soak", "timeout"] {
            self.only_for(f, &nb.body, key, kind, SUC_KINDS);
        }
        self.only_for(
            f,
            &nb.body,
            "node_selector",
            kind,
            &["k3s", "rke2", "kubeadm"],
        );
        self.only_for(f, &nb.body, "hosts", kind, &["kubeadm"]);
        let hosts = self.get_hosts(f, &nb.body, "hosts");
        if kind == Some("kubeadm")
            && hosts.as_ref().is_none_or(|h| h.is_empty())
            && nb.body.get_attribute("node_selector").is_none()
        {
            self.err_at(
                f,
                nb.ident.span(),
                Diagnostic::error(format!("node_group \"{name}\" names no hosts"))
                    .detail("kup reaches kubeadm nodes over SSH, so a node group lists its hosts or picks them from the cluster's Node objects.")
                    .hint("add hosts = [\"w1.lab\", \"w2.lab\"], or node_selector = \"LABEL=VALUE\""),
            );
        }
        let hosts = hosts.unwrap_or_default();
        let suc = kind.is_some_and(|k| SUC_KINDS.contains(&k));
        if let (Some(w), Some(kind)) = (nb.body.get_blocks("window").next(), kind) {
            if !suc {
                self.err_at(
                    f,
                    w.ident.span(),
                    Diagnostic::error(format!("window is not used by provider type \"{kind}\""))
                        .detail("A node group's window tells system-upgrade-controller when it may start upgrades; only k3s and rke2 clusters use it.")
                        .hint("remove the window block (GKE maintenance windows are read from the cluster itself)"),
                );
            }
        }
        let mut suc_failed = false;
        let node_selector = self.get_string(f, &nb.body, "node_selector");
        if let (Some(sel), Some(a)) = (&node_selector, nb.body.get_attribute("node_selector")) {
            if let Err(e) = check_selector(sel) {
                self.err_at(
                    f,
                    a.value.span(),
                    Diagnostic::error("Invalid node_selector")
                        .detail(format!("{e}."))
                        .hint("write a label selector as kubectl -l takes it, e.g. \"pool=edge\" or \"node-role.kubernetes.io/control-plane!=true\""),
                );
                suc_failed = true;
            }
        }
        let tolerations = self.tolerations(f, &nb.body);
        let window = nb
            .body
            .get_blocks("window")
            .next()
            .map(|w| self.window(f, w));
        suc_failed |= tolerations.is_none() || matches!(window, Some(None));
        let tolerations = tolerations.unwrap_or_default();
        let window = window.flatten();
        let batch_soak = self.get_duration(f, &nb.body, "batch_soak");
        let timeout = self.get_duration(f, &nb.body, "timeout");
        if let Some(prev) = existing.iter().find(|g| g.name == name) {
            let first = prev
                .origin
                .clone()
                .map(|o| o.to_string())
                .unwrap_or_default();
            self.err_at(
                f,
                nb.labels[0].span(),
                Diagnostic::error(format!("Duplicate node_group \"{name}\""))
                    .detail(format!(
                        "node_group \"{name}\" was already declared in this cluster at {first}."
                    ))
                    .hint("node group names must be unique within a cluster; rename one"),
            );
            return None;
        }
        let mut failed = false;
        // version
        let version = if nb.body.get_attribute("version").is_some() {
            match self.get_version(f, &nb.body, "version") {
                Some((v, loc)) => {
                    if let Some((cv, _)) = cluster_version {
                        let span = nb
                            .body
                            .get_attribute("version")
                            .and_then(|a| a.value.span());
                        match SkewPolicy::upstream().kubelet_ok(cv.minor(), v.minor()) {
                            Ok(()) => {}
                            Err(SkewViolation::KubeletNewer { .. }) => {
                                failed = true;
                                self.err_at(
                                    f,
                                    span,
                                    Diagnostic::error("Node group version is newer than the cluster version")
                                        .detail(format!(
                                            "node_group \"{name}\" asks for {v}, but the control plane's target is {cv}: \
                                             kubelet must not be newer than the control plane (kube-apiserver), per the \
                                             Kubernetes version skew policy."
                                        ))
                                        .hint(format!(
                                            "use version = \"{}\" (or older) here, or raise the cluster's version to {}",
                                            cv.minor(),
                                            v.minor()
                                        )),
                                );
                            }
                            Err(e) => {
                                failed = true;
                                let max = SkewPolicy::upstream().max_kubelet_lag(v.minor());
                                self.err_at(
                                    f,
                                    span,
                                    Diagnostic::error("Node group version is too far behind the cluster version")
                                        .detail(format!(
                                            "node_group \"{name}\" would stay at {v} while the control plane goes to {cv}: {e}."
                                        ))
                                        .hint(format!(
                                            "use a version no more than {max} minors behind {}, e.g. version = \"{}\"",
                                            cv.minor(),
                                            cv.minor().minus(max)
                                        )),
                                );
                            }
                        }
                    }
                    Some((v, loc))
                }
                None => {
                    failed = true;
                    None
                }
            }
        } else {
            inherited.cloned()
        };
        let follows_cluster = nb.body.get_attribute("version").is_none();

        // strategy
        let strategy_attr = nb.body.get_attribute("strategy");
        let strategy = match self.get_string(f, &nb.body, "strategy") {
            None => {
                if strategy_attr.is_some() {
                    failed = true;
                }
                "rolling".to_string()
            }
            Some(s) if s == "rolling" || s == "blue_green" => s,
            Some(s) => {
                failed = true;
                let span = strategy_attr.and_then(|a| a.value.span());
                self.err_at(
                    f,
                    span,
                    Diagnostic::error(format!("Unknown strategy \"{s}\""))
                        .detail("A node group is replaced either in place (\"rolling\") or by a new group (\"blue_green\").")
                        .hint(
                            did_you_mean_hint(&s, ["rolling", "blue_green"])
                                .unwrap_or_else(|| "use strategy = \"rolling\" or strategy = \"blue_green\"".to_string()),
                        ),
                );
                "rolling".to_string()
            }
        };
        let mu = self.get_unavailable(f, &nb.body, "max_unavailable");
        let ms = self.get_unavailable(f, &nb.body, "max_surge");
        let (Ok(mu), Ok(ms)) = (mu, ms) else {
            return None;
        };
        let max_unavailable = mu.unwrap_or(Unavailable::Count(1));
        let mu_span = nb
            .body
            .get_attribute("max_unavailable")
            .and_then(|a| a.value.span())
            .or(nb.ident.span());

        // drain
        let drains: Vec<&Block> = nb
            .body
            .get_blocks("drain")
            .filter(|d| d.labels.is_empty())
            .collect();
        if let Some(extra) = drains.get(1) {
            self.err_at(
                f,
                extra.ident.span(),
                Diagnostic::error("Duplicate drain block")
                    .detail("A node group has at most one drain block.")
                    .hint("merge the settings into one drain { ... } block"),
            );
        }
        let drain = match drains.first() {
            Some(d) => self.drain(f, d),
            None => DrainSpec::default(),
        };
        let node_soak = self.get_duration(f, &nb.body, "node_soak");
        if let (Some(a), true) = (nb.body.get_attribute("node_soak"), strategy == "blue_green") {
            failed = true;
            self.err_at(
                f,
                a.key.span(),
                Diagnostic::error("node_soak is for rolling node groups")
                    .detail("node_soak is how long the provider waits after draining each node before replacing it; a blue/green group soaks as a whole.")
                    .hint("use blue_green { soak = \"…\" } instead, or strategy = \"rolling\""),
            );
        }

        // blue_green
        let bgs: Vec<&Block> = nb
            .body
            .get_blocks("blue_green")
            .filter(|d| d.labels.is_empty())
            .collect();
        if let Some(extra) = bgs.get(1) {
            self.err_at(
                f,
                extra.ident.span(),
                Diagnostic::error("Duplicate blue_green block")
                    .detail("A node group has at most one blue_green block.")
                    .hint("merge the settings into one blue_green { ... } block"),
            );
        }
        let strategy = if strategy == "blue_green" {
            let (mut soak, mut batch_soak) = (Duration::from_secs(15 * 60), Duration::ZERO);
            let (mut native, mut early) = (None, None);
            if let Some(bg) = bgs.first() {
                self.check_schema(
                    f,
                    &bg.body,
                    "a blue_green block",
                    &["soak", "batch_soak", "native", "complete_when_healthy_for"],
                    &[],
                );
                if let Some(d) = self.get_duration(f, &bg.body, "soak") {
                    soak = d;
                }
                if let Some(d) = self.get_duration(f, &bg.body, "batch_soak") {
                    batch_soak = d;
                }
                native = self.get_bool(f, &bg.body, "native");
                early = self.get_duration(f, &bg.body, "complete_when_healthy_for");
                if let (Some(d), Some(a)) =
                    (early, bg.body.get_attribute("complete_when_healthy_for"))
                {
                    if native == Some(false) || d > soak {
                        failed = true;
                        self.err_at(
                            f,
                            a.key.span(),
                            if native == Some(false) {
                                Diagnostic::error("complete_when_healthy_for needs the provider's native blue/green")
                                    .detail("With native = false kup runs the soak itself and ends it after `soak`; there is no provider upgrade to complete early.")
                                    .hint("remove complete_when_healthy_for, or shorten soak instead")
                            } else {
                                Diagnostic::error("complete_when_healthy_for is longer than soak")
                                    .detail(format!(
                                        "The provider ends the soak after {} anyway, so a health window of {} could never end it early.",
                                        humantime::format_duration(soak),
                                        humantime::format_duration(d)
                                    ))
                                    .hint("make complete_when_healthy_for shorter than soak")
                            },
                        );
                    }
                }
            }
            if let Some(a) = nb.body.get_attribute("max_surge") {
                failed = true;
                self.err_at(
                    f,
                    a.key.span(),
                    Diagnostic::error("max_surge is only valid with strategy = \"rolling\"")
                        .detail("A blue/green rollout creates a whole new group, so there is nothing to surge.")
                        .hint("remove max_surge, or use strategy = \"rolling\""),
                );
            }
            if max_unavailable == Unavailable::Count(0) {
                failed = true;
                self.err_at(
                    f,
                    mu_span,
                    Diagnostic::error("max_unavailable = 0 would never drain the old group")
                        .detail("With blue_green, max_unavailable bounds how many old nodes are drained at once; 0 means none ever could be.")
                        .hint("use max_unavailable = 1 or more, or a percentage like \"25%\""),
                );
            }
            Strategy::BlueGreen {
                max_unavailable,
                soak,
                batch_soak,
                native,
                complete_when_healthy_for: early,
            }
        } else {
            if let Some(bg) = bgs.first() {
                failed = true;
                self.err_at(
                    f,
                    bg.ident.span(),
                    Diagnostic::error("blue_green block with a rolling strategy")
                        .detail(format!(
                            "node_group \"{name}\" uses strategy \"rolling\", so its blue_green settings would be ignored."
                        ))
                        .hint("add strategy = \"blue_green\", or remove the blue_green block"),
                );
            }
            if max_unavailable == Unavailable::Count(0)
                && matches!(ms, None | Some(Unavailable::Count(0)))
            {
                failed = true;
                self.err_at(
                    f,
                    mu_span,
                    Diagnostic::error("max_unavailable = 0 with max_surge = 0: no node could ever be replaced")
                        .detail("A rolling update either takes a node out (max_unavailable) or adds one first (max_surge); with both at 0 it can do neither.")
                        .hint("set max_unavailable = 1 (or more), or max_surge = 1 to add a node before removing one"),
                );
            }
            Strategy::Rolling {
                max_unavailable,
                max_surge: ms,
            }
        };
        if failed || suc_failed {
            return None;
        }
        let (version, version_origin) = match version {
            Some((v, loc)) => (v, Some(loc)),
            None => return None,
        };
        Some(NodeGroupSpec {
            name,
            version,
            follows_cluster,
            strategy,
            drain,
            node_soak,
            node_selector,
            hosts,
            tolerations,
            window,
            batch_soak,
            timeout,
            origin: Some(origin),
            version_origin,
        })
    }

    /// `tolerations = [{ key = "…", operator = "Exists", effect = "NoSchedule" }]`.
    fn tolerations(&mut self, f: usize, body: &Body) -> Option<Vec<Toleration>> {
        let Some(a) = body.get_attribute("tolerations") else {
            return Some(Vec::new());
        };
        let span = a.value.span();
        let v = self.value(f, &a.value)?;
        let bad = |this: &mut Self, why: String| {
            this.err_at(
                f,
                span.clone(),
                Diagnostic::error("Invalid tolerations")
                    .detail(why)
                    .hint("write tolerations = [{ key = \"dedicated\", operator = \"Equal\", value = \"edge\", effect = \"NoSchedule\" }]"),
            );
        };
        let Value::Array(items) = v else {
            bad(self, "tolerations must be a list of objects.".into());
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let Value::Object(m) = item else {
                bad(self, "every toleration must be an object.".into());
                return None;
            };
            let mut t = Toleration::default();
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("key", Value::String(s)) => t.key = Some(s),
                    ("value", Value::String(s)) => t.value = Some(s),
                    ("operator", Value::String(s)) if s == "Equal" || s == "Exists" => {
                        t.operator = Some(s)
                    }
                    ("effect", Value::String(s))
                        if ["NoSchedule", "PreferNoSchedule", "NoExecute"]
                            .contains(&s.as_str()) =>
                    {
                        t.effect = Some(s)
                    }
                    ("toleration_seconds", Value::Number(n)) if n.as_i64().is_some() => {
                        t.toleration_seconds = n.as_i64()
                    }
                    (k, v) => {
                        bad(self, format!(
                            "{k} = {} is not a toleration field: use key, operator (Equal|Exists), value, effect (NoSchedule|PreferNoSchedule|NoExecute) and toleration_seconds.",
                            short_value(&v)
                        ));
                        return None;
                    }
                }
            }
            out.push(t);
        }
        Some(out)
    }

    /// `rollout "NAME" { wave "NAME" { clusters, after, soak, max_parallel, window } }`.
    fn rollouts(
        &mut self,
        blocks: &[(usize, Block)],
        clusters: &[ClusterSpec],
    ) -> Vec<crate::model::RolloutSpec> {
        let labels: Vec<&str> = clusters.iter().map(|c| c.label.as_str()).collect();
        let mut out: Vec<crate::model::RolloutSpec> = Vec::new();
        // cluster label → `rollout.R.wave.W` that took it first
        let mut taken: BTreeMap<String, String> = BTreeMap::new();
        for (f, b) in blocks {
            let f = *f;
            let name = b.labels[0].as_str().to_string();
            self.check_schema(
                f,
                &b.body,
                &format!("rollout \"{name}\""),
                &[],
                &[("wave", 1)],
            );
            if out.iter().any(|r| r.name == name) {
                self.err_at(
                    f,
                    b.labels[0].span(),
                    Diagnostic::error(format!("Duplicate rollout \"{name}\""))
                        .hint("rollout names must be unique; merge the waves into one rollout or rename one"),
                );
                continue;
            }
            let mut waves: Vec<crate::model::WaveSpec> = Vec::new();
            for w in b.body.get_blocks("wave") {
                let wave = w.labels[0].as_str().to_string();
                let what = format!("wave \"{wave}\"");
                self.check_schema(
                    f,
                    &w.body,
                    &what,
                    &["clusters", "after", "soak", "max_parallel"],
                    &[("window", 0)],
                );
                if waves.iter().any(|x| x.name == wave) {
                    self.err_at(
                        f,
                        w.labels[0].span(),
                        Diagnostic::error(format!(
                            "Duplicate wave \"{wave}\" in rollout \"{name}\""
                        ))
                        .hint("wave names must be unique within a rollout"),
                    );
                    continue;
                }
                let Some(patterns) = self.get_string_list(f, &w.body, "clusters") else {
                    if w.body.get_attribute("clusters").is_none() {
                        self.err_at(
                            f,
                            w.ident.span(),
                            Diagnostic::error(format!("Missing required attribute \"clusters\" in {what}"))
                                .hint("list the cluster labels (or globs such as \"prod-*\") of the wave: clusters = [\"dev-eu\"]"),
                        );
                    }
                    continue;
                };
                let span = w
                    .body
                    .get_attribute("clusters")
                    .and_then(|a| a.value.span());
                let mut members: Vec<String> = Vec::new();
                for p in &patterns {
                    let matched: Vec<&str> = labels
                        .iter()
                        .copied()
                        .filter(|l| glob_match(p, l))
                        .collect();
                    if matched.is_empty() {
                        self.err_at(
                            f,
                            span.clone(),
                            Diagnostic::error(format!("\"{p}\" matches no cluster"))
                                .detail(format!("{what} of rollout \"{name}\" names clusters by their labels (`cluster \"LABEL\"`), with * for any characters."))
                                .hint(
                                    did_you_mean_hint(p, labels.iter().copied()).unwrap_or_else(|| {
                                        format!("declared clusters: {}", labels.join(", "))
                                    }),
                                ),
                        );
                    }
                    for m in matched {
                        if members.iter().any(|x| x == m) {
                            continue;
                        }
                        let here = format!("rollout.{name}.wave.{wave}");
                        if let Some(first) = taken.get(m) {
                            self.err_at(
                                f,
                                span.clone(),
                                Diagnostic::error(format!("cluster \"{m}\" is in two waves"))
                                    .detail(format!("It is already in {first}; a cluster is upgraded in one wave."))
                                    .hint("narrow one of the patterns"),
                            );
                            continue;
                        }
                        taken.insert(m.to_string(), here);
                        members.push(m.to_string());
                    }
                }
                // Configuration order, so plans do not depend on how patterns are written.
                members.sort_by_key(|m| labels.iter().position(|l| l == m));
                let after = self
                    .get_string_list(f, &w.body, "after")
                    .unwrap_or_default();
                for a in &after {
                    if !waves.iter().any(|x| &x.name == a) {
                        let span = w.body.get_attribute("after").and_then(|a| a.value.span());
                        let earlier: Vec<&str> = waves.iter().map(|x| x.name.as_str()).collect();
                        self.err_at(
                            f,
                            span,
                            Diagnostic::error(format!("{what} follows \"{a}\", which is not a wave written before it"))
                                .detail("after names waves of the same rollout, written above this one (so waves cannot wait on each other in a circle).")
                                .hint(did_you_mean_hint(a, earlier.iter().copied()).unwrap_or_else(|| {
                                    if earlier.is_empty() {
                                        "the first wave of a rollout follows nothing: remove after".into()
                                    } else {
                                        format!("waves written before it: {}", earlier.join(", "))
                                    }
                                })),
                        );
                    }
                }
                let soak = self.get_duration(f, &w.body, "soak").unwrap_or_default();
                if soak > Duration::ZERO && after.is_empty() {
                    let span = w.body.get_attribute("soak").and_then(|a| a.value.span());
                    self.err_at(
                        f,
                        span,
                        Diagnostic::error(format!("{what} has a soak but follows no wave"))
                            .detail("soak is how long the waves in `after` must run at their new version before this one starts.")
                            .hint("add after = [\"…\"], or remove soak"),
                    );
                }
                let max_parallel = match w.body.get_attribute("max_parallel") {
                    Some(a) => match self.get_number(f, &w.body, "max_parallel", "3") {
                        Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => {
                            Some(x as u32)
                        }
                        Some(x) => {
                            self.err_at(
                                f,
                                a.value.span(),
                                Diagnostic::error("Invalid max_parallel")
                                    .detail(format!("max_parallel must be a whole number of at least 1, but it is {x}."))
                                    .hint("write max_parallel = 1 (one cluster at a time) or more"),
                            );
                            None
                        }
                        None => None,
                    },
                    None => None,
                };
                let window = w
                    .body
                    .get_blocks("window")
                    .next()
                    .and_then(|wb| self.window(f, wb));
                waves.push(crate::model::WaveSpec {
                    name: wave,
                    patterns,
                    clusters: members,
                    after,
                    soak,
                    max_parallel,
                    window,
                });
            }
            out.push(crate::model::RolloutSpec { name, waves });
        }
        out
    }

    /// `window { days = ["saturday"], start = "01:00", end = "05:00", time_zone = "UTC" }`.
    fn window(&mut self, f: usize, w: &Block) -> Option<UpgradeWindow> {
        self.check_schema(
            f,
            &w.body,
            "a window block",
            &["days", "start", "end", "time_zone"],
            &[],
        );
        const DAYS: &[&str] = &[
            "0",
            "su",
            "sun",
            "sunday",
            "1",
            "mo",
            "mon",
            "monday",
            "2",
            "tu",
            "tue",
            "tuesday",
            "3",
            "we",
            "wed",
            "wednesday",
            "4",
            "th",
            "thu",
            "thursday",
            "5",
            "fr",
            "fri",
            "friday",
            "6",
            "sa",
            "sat",
            "saturday",
        ];
        let days = self.get_string_list(f, &w.body, "days").unwrap_or_default();
        let mut ok = true;
        if let Some(bad) = days.iter().find(|d| !DAYS.contains(&d.as_str())) {
            ok = false;
            let span = w.body.get_attribute("days").and_then(|a| a.value.span());
            self.err_at(
                f,
                span,
                Diagnostic::error(format!("\"{bad}\" is not a day"))
                    .detail("window days are written as system-upgrade-controller takes them.")
                    .hint("write days = [\"saturday\", \"sunday\"] (or sat, sa, 6; sunday is 0)"),
            );
        }
        let mut time = |this: &mut Self, key: &str| -> Option<String> {
            let Some(a) = w.body.get_attribute(key) else {
                ok = false;
                this.err_at(
                    f,
                    w.ident.span(),
                    Diagnostic::error(format!("Missing required attribute \"{key}\" in window"))
                        .detail(
                            "A window needs the days and the hours in which upgrades may start.",
                        )
                        .hint("add start = \"01:00\" and end = \"05:00\""),
                );
                return None;
            };
            let span = a.value.span();
            let v = this.get_string(f, &w.body, key)?;
            let valid = v.split_once(':').is_some_and(|(h, m)| {
                h.len() <= 2
                    && m.len() == 2
                    && h.parse::<u32>().is_ok_and(|h| h < 24)
                    && m.parse::<u32>().is_ok_and(|m| m < 60)
            });
            if !valid {
                ok = false;
                this.err_at(
                    f,
                    span,
                    Diagnostic::error(format!("Invalid {key} time \"{v}\""))
                        .detail("Window times are 24-hour HH:MM.")
                        .hint(format!("write {key} = \"01:00\"")),
                );
                return None;
            }
            Some(v)
        };
        let start = time(self, "start");
        let end = time(self, "end");
        if days.is_empty() && w.body.get_attribute("days").is_none() {
            ok = false;
            self.err_at(
                f,
                w.ident.span(),
                Diagnostic::error("Missing required attribute \"days\" in window")
                    .detail("A window needs the days in which upgrades may start.")
                    .hint("add days = [\"saturday\", \"sunday\"]"),
            );
        }
        let time_zone = self.get_string(f, &w.body, "time_zone");
        if let (Some(tz), Some(a)) = (&time_zone, w.body.get_attribute("time_zone")) {
            // An unknown zone would only fail when the window is first needed, mid-rollout.
            if jiff::tz::TimeZone::get(tz).is_err() {
                ok = false;
                let zones: Vec<String> =
                    jiff::tz::db().available().map(|n| n.to_string()).collect();
                let suggestion = super::diag::did_you_mean(tz, zones.iter().map(String::as_str));
                self.err_at(
                    f,
                    a.value.span(),
                    Diagnostic::error(format!("Unknown time zone \"{tz}\""))
                        .detail("Time zones are IANA names, as in the tz database kup bundles.")
                        .hint(match suggestion {
                            Some(s) => format!("did you mean \"{s}\"?"),
                            None => "write an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"".into(),
                        }),
                );
            }
        }
        if !ok {
            return None;
        }
        Some(UpgradeWindow {
            days,
            start: start?,
            end: end?,
            time_zone,
        })
    }

    fn drain(&mut self, f: usize, d: &Block) -> DrainSpec {
        self.check_schema(
            f,
            &d.body,
            "a drain block",
            &[
                "timeout",
                "grace_period",
                "delete_emptydir_data",
                "force",
                "pod_selector",
                "skip_wait_for_delete_timeout",
                "disable_eviction",
                "on_blocked",
            ],
            &[],
        );
        let on_blocked = self.get_string(f, &d.body, "on_blocked");
        let on_blocked_wait = match on_blocked.as_deref() {
            None | Some("fail") => false,
            Some("wait") => true,
            Some(other) => {
                if let Some(a) = d.body.get_attribute("on_blocked") {
                    self.err_at(
                        f,
                        a.value.span(),
                        Diagnostic::error(format!("on_blocked = \"{other}\" is not a choice"))
                            .detail("on_blocked says what apply does when the plan predicts a PodDisruptionBudget will block this drain.")
                            .hint("write on_blocked = \"fail\" (refuse to apply, the default) or \"wait\" (drain and wait for the budget, up to timeout)"),
                    );
                }
                false
            }
        };
        DrainSpec {
            on_blocked_wait,
            timeout: self.get_duration(f, &d.body, "timeout"),
            grace_period: self.get_duration(f, &d.body, "grace_period"),
            delete_emptydir_data: self
                .get_bool(f, &d.body, "delete_emptydir_data")
                .unwrap_or(false),
            force: self.get_bool(f, &d.body, "force").unwrap_or(false),
            pod_selector: self.get_string(f, &d.body, "pod_selector"),
            skip_wait_for_delete_timeout: self.get_duration(
                f,
                &d.body,
                "skip_wait_for_delete_timeout",
            ),
            disable_eviction: self
                .get_bool(f, &d.body, "disable_eviction")
                .unwrap_or(false),
            retry_backoff: None,
        }
    }
}

/// Why `h` cannot be an SSH host (it could become an ssh option or shell syntax).
pub fn check_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("a host name cannot be empty".into());
    }
    if h.starts_with('-') {
        return Err(format!(
            "{h:?} starts with `-`, which ssh would read as an option"
        ));
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_:".contains(*c)))
    {
        return Err(format!(
            "{h:?} contains {c:?}; host names are letters, digits, `.`, `-`, `_` and `:`"
        ));
    }
    Ok(())
}

/// A label selector in kubectl's syntax: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
/// `k notin (a)`, joined by commas.
pub fn check_selector(s: &str) -> Result<(), String> {
    let mut depth = 0i32;
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("`{s}` has an unbalanced `)`"));
        }
    }
    if depth != 0 {
        return Err(format!("`{s}` has an unbalanced `(`"));
    }
    parts.push(&s[start..]);
    let key_ok = |k: &str| {
        let k = k.trim();
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    for p in parts {
        let p = p.trim();
        let key = if let Some(k) = p.strip_prefix('!') {
            k
        } else if let Some((k, _)) = p.split_once(" notin ").or_else(|| p.split_once(" in ")) {
            k
        } else if let Some((k, _)) = p
            .split_once("!=")
            .or_else(|| p.split_once("=="))
            .or_else(|| p.split_once('='))
        {
            k
        } else {
            p
        };
        if !key_ok(key) {
            return Err(format!("`{p}` in `{s}` has no valid label key"));
        }
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-')
}

/// Register every string (and number) inside a sensitive value with the redactor.
fn register_leaves(v: &Value) {
    match v {
        Value::String(s) => crate::redact::register(s),
        Value::Number(n) => crate::redact::register(&n.to_string()),
        Value::Array(items) => items.iter().for_each(register_leaves),
        Value::Object(m) => m.values().for_each(register_leaves),
        _ => {}
    }
}

fn short_value(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!(" (\"{s}\")"),
        Value::Number(n) => format!(" ({n})"),
        Value::Bool(b) => format!(" ({b})"),
        _ => String::new(),
    }
}

/// `*` matches any run of characters, `?` one; everything else itself. Written here
/// rather than pulled from a glob crate: cluster labels are not paths, and this is all
/// the matching waves need.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// `http://` to a host other than this machine.
pub(crate) fn plain_http_off_machine(url: &str) -> bool {
    let Some(rest) = url
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}
