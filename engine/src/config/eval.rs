//! Expression evaluation: static reference checks (with exact spans), the function library,
//! `can(...)`, type constraints, and mapping hcl-rs evaluation errors back to source spans.

use std::collections::BTreeSet;
use std::ops::Range;

use hcl::edit::expr as ee;
use hcl::edit::template as et;
use hcl::edit::visit::{self, Visit};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Number, Value};

use super::diag::{did_you_mean_hint, Diagnostic, SourceFile};

/// The functions expressions may call (Terraform names and semantics).
pub const FUNCTIONS: &[&str] = &[
    "can",
    "coalesce",
    "concat",
    "contains",
    "format",
    "join",
    "length",
    "lookup",
    "lower",
    "max",
    "min",
    "regex",
    "replace",
    "split",
    "tonumber",
    "tostring",
    "trimprefix",
    "trimsuffix",
    "upper",
];

// ---------------------------------------------------------------------------------------
// Static reference checks
// ---------------------------------------------------------------------------------------

/// Which names an expression may refer to.
pub struct Scope<'a> {
    /// Declared variables; `None` = `var.*` is not allowed here.
    pub vars: Option<&'a [String]>,
    /// Declared locals; `None` = `local.*` is not allowed here.
    pub locals: Option<&'a [String]>,
    /// Where we are, for "not allowed" messages, e.g. "in a variable's default".
    pub context: &'a str,
}

/// What an expression refers to.
#[derive(Debug, Default)]
pub struct Refs {
    pub vars: BTreeSet<String>,
    pub locals: Vec<(String, Option<Range<usize>>)>,
}

struct RefChecker<'a> {
    scope: &'a Scope<'a>,
    file: &'a SourceFile,
    bound: Vec<String>,
    diags: Vec<Diagnostic>,
    refs: Refs,
}

impl RefChecker<'_> {
    fn err(&mut self, d: Diagnostic, span: Option<Range<usize>>) {
        let (loc, span) = self.file.at(&span);
        self.diags.push(d.at(loc, span));
    }

    fn root(
        &mut self,
        name: &str,
        name_span: Option<Range<usize>>,
        first: Option<&ee::TraversalOperator>,
        whole: Option<Range<usize>>,
    ) {
        if self.bound.iter().any(|b| b == name) {
            return;
        }
        let attr = match first {
            Some(ee::TraversalOperator::GetAttr(id)) => Some((id.as_str().to_string(), id.span())),
            _ => None,
        };
        match name {
            "var" | "local" => {
                let (allowed, what, noun) = if name == "var" {
                    (self.scope.vars, "variable", "input variable")
                } else {
                    (self.scope.locals, "local value", "local value")
                };
                let Some(allowed) = allowed else {
                    self.err(
                        Diagnostic::error(format!("{name}.* references are not allowed here"))
                            .detail(format!(
                                "Expressions {} cannot refer to {}s.",
                                self.scope.context, what
                            ))
                            .hint("write a literal value here"),
                        whole,
                    );
                    return;
                };
                let Some((attr, attr_span)) = attr else {
                    self.err(
                        Diagnostic::error(format!("Invalid reference to `{name}`"))
                            .detail(format!(
                                "A reference to {what}s must name one: {name}.NAME."
                            ))
                            .hint(format!("write {name}.NAME, e.g. {name}.target")),
                        whole,
                    );
                    return;
                };
                if allowed.contains(&attr) {
                    if name == "var" {
                        self.refs.vars.insert(attr);
                    } else {
                        self.refs.locals.push((attr, whole));
                    }
                } else {
                    let hint = did_you_mean_hint(&attr, allowed.iter().map(String::as_str))
                        .map(|h| {
                            h.replace('"', "")
                                .replace("mean ", &format!("mean {name}."))
                        })
                        .unwrap_or_else(|| {
                            if allowed.is_empty() {
                                if name == "var" {
                                    format!("declare it: variable \"{attr}\" {{ ... }}")
                                } else {
                                    format!(
                                        "declare it in a locals block: locals {{ {attr} = ... }}"
                                    )
                                }
                            } else {
                                format!(
                                    "declared {what}s: {}",
                                    allowed
                                        .iter()
                                        .map(|a| format!("{name}.{a}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            }
                        });
                    let summary = if name == "var" {
                        "Reference to undeclared input variable"
                    } else {
                        "Reference to undeclared local value"
                    };
                    self.err(
                        Diagnostic::error(summary)
                            .detail(format!("No {noun} named \"{attr}\" is declared."))
                            .hint(hint),
                        attr_span.or(whole),
                    );
                }
            }
            _ => {
                let mut candidates: Vec<String> = vec!["var".into(), "local".into()];
                candidates.extend(self.bound.iter().cloned());
                let mut hint = did_you_mean_hint(name, candidates.iter().map(String::as_str));
                if self.scope.vars.is_some_and(|v| v.iter().any(|x| x == name)) {
                    hint = Some(format!("did you mean var.{name}?"));
                } else if self
                    .scope
                    .locals
                    .is_some_and(|v| v.iter().any(|x| x == name))
                {
                    hint = Some(format!("did you mean local.{name}?"));
                }
                self.err(
                    Diagnostic::error(format!("Unknown variable `{name}`"))
                        .detail(
                            "Only var.NAME (input variables) and local.NAME (local values) can be \
                             referred to here; to write a string, quote it.",
                        )
                        .hint(
                            hint.unwrap_or_else(|| format!("if you meant text, write \"{name}\"")),
                        ),
                    name_span.or(whole),
                );
            }
        }
    }
}

impl Visit for RefChecker<'_> {
    fn visit_expr(&mut self, node: &ee::Expression) {
        if let ee::Expression::Variable(v) = node {
            self.root(v.as_str(), v.span(), None, v.span());
        } else {
            visit::visit_expr(self, node);
        }
    }

    fn visit_traversal(&mut self, node: &ee::Traversal) {
        if let ee::Expression::Variable(v) = &node.expr {
            let first = node.operators.first().map(|o| o.value());
            let whole = match (v.span(), node.operators.first().and_then(|o| o.span())) {
                (Some(a), Some(b)) => Some(a.start..b.end),
                (a, _) => a,
            };
            self.root(v.as_str(), v.span(), first, whole);
        } else {
            self.visit_expr(&node.expr);
        }
        for op in &node.operators {
            self.visit_traversal_operator(op);
        }
    }

    fn visit_func_call(&mut self, node: &ee::FuncCall) {
        let name = node.name.name.as_str();
        if node.name.is_namespaced() || !FUNCTIONS.contains(&name) {
            let shown = if node.name.is_namespaced() {
                let mut s: Vec<&str> = node.name.namespace.iter().map(|n| n.as_str()).collect();
                s.push(name);
                s.join("::")
            } else {
                name.to_string()
            };
            let span = node.name.name.span();
            self.err(
                Diagnostic::error("Call to unknown function")
                    .detail(format!(
                        "There is no function named \"{shown}\". Available functions: {}.",
                        FUNCTIONS.join(", ")
                    ))
                    .maybe_hint(did_you_mean_hint(name, FUNCTIONS.iter().copied())),
                span,
            );
        }
        visit::visit_func_args(self, &node.args);
    }

    fn visit_for_expr(&mut self, node: &ee::ForExpr) {
        self.visit_expr(&node.intro.collection_expr);
        let n = self.bound.len();
        if let Some(k) = &node.intro.key_var {
            self.bound.push(k.as_str().to_string());
        }
        self.bound.push(node.intro.value_var.as_str().to_string());
        if let Some(k) = &node.key_expr {
            self.visit_expr(k);
        }
        self.visit_expr(&node.value_expr);
        if let Some(c) = &node.cond {
            self.visit_expr(&c.expr);
        }
        self.bound.truncate(n);
    }

    fn visit_for_template_expr(&mut self, node: &et::ForTemplateExpr) {
        self.visit_expr(&node.collection_expr);
        let n = self.bound.len();
        if let Some(k) = &node.key_var {
            self.bound.push(k.as_str().to_string());
        }
        self.bound.push(node.value_var.as_str().to_string());
        self.visit_template(&node.template);
        self.bound.truncate(n);
    }
}

/// Check every reference and function call in `expr`; returns what it refers to.
pub fn check_refs(
    expr: &ee::Expression,
    scope: &Scope<'_>,
    file: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Refs {
    let mut c = RefChecker {
        scope,
        file,
        bound: Vec::new(),
        diags: Vec::new(),
        refs: Refs::default(),
    };
    c.visit_expr(expr);
    diags.extend(c.diags);
    c.refs
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// A context with `var` and `local` objects and every function declared.
pub fn context<'a>(
    vars: Option<&Map<String, Value>>,
    locals: Option<&Map<String, Value>>,
) -> Context<'a> {
    let mut ctx = Context::new();
    if let Some(v) = vars {
        ctx.declare_var("var", Value::Object(v.clone()));
    }
    if let Some(l) = locals {
        ctx.declare_var("local", Value::Object(l.clone()));
    }
    declare_functions(&mut ctx);
    ctx
}

/// Evaluate an expression whose references were already checked.
pub fn eval(
    expr: &ee::Expression,
    ctx: &Context<'_>,
    file: &SourceFile,
) -> Result<Value, Diagnostic> {
    let mut e: hcl::Expression = expr.clone().into();
    rewrite_can(&mut e, ctx, false);
    e.evaluate(ctx).map_err(|err| {
        let mut span = err
            .expr()
            .and_then(|failed| find_span(expr, failed))
            .or_else(|| expr.span());
        if let hcl::eval::ErrorKind::NoSuchKey(key) = err.kind() {
            if let Some(s) = find_attr_span(expr, key, span.clone()) {
                span = Some(s);
            }
        }
        let (loc, span) = file.at(&span);
        eval_error_diag(&err).at(loc, span)
    })
}

fn eval_error_diag(err: &hcl::eval::Error) -> Diagnostic {
    use hcl::eval::ErrorKind as K;
    let kind = err.kind();
    let (summary, hint): (&str, Option<String>) = match kind {
        K::UndefinedVar(_) => ("Unknown variable", None),
        K::UndefinedFunc(_) => ("Call to unknown function", None),
        K::Unexpected(_, _) => (
            "Invalid value in expression",
            Some("check the types of the values this expression combines".into()),
        ),
        K::Index(_) => ("Index out of range", None),
        K::UnaryOp(..) | K::BinaryOp(..) => (
            "Invalid operation",
            Some("both operands must have types the operator accepts".into()),
        ),
        K::NoSuchKey(_) => ("Unsupported attribute", None),
        K::KeyExists(_) => ("Duplicate object key", None),
        K::FuncCall(..) => ("Error in function call", None),
        _ => ("Invalid expression", None),
    };
    Diagnostic::error(summary)
        .detail(format!("{}.", kind.to_string().trim_end_matches('.')))
        .maybe_hint(hint)
}

/// The span of the innermost sub-expression of `root` equal to `failed`.
fn find_span(root: &ee::Expression, failed: &hcl::Expression) -> Option<Range<usize>> {
    struct Finder<'a> {
        failed: &'a hcl::Expression,
        found: Option<Range<usize>>,
    }
    impl Visit for Finder<'_> {
        fn visit_expr(&mut self, node: &ee::Expression) {
            let converted: hcl::Expression = node.clone().into();
            if &converted == self.failed {
                if let Some(s) = node.span() {
                    self.found = Some(s);
                }
            }
            visit::visit_expr(self, node);
        }
    }
    let mut f = Finder {
        failed,
        found: None,
    };
    f.visit_expr(root);
    f.found
}

/// The span of the first `.key` access inside `within`.
fn find_attr_span(
    root: &ee::Expression,
    key: &str,
    within: Option<Range<usize>>,
) -> Option<Range<usize>> {
    struct Finder<'a> {
        key: &'a str,
        within: Option<Range<usize>>,
        found: Option<Range<usize>>,
    }
    impl Visit for Finder<'_> {
        fn visit_traversal_operator(&mut self, node: &ee::TraversalOperator) {
            if let ee::TraversalOperator::GetAttr(id) = node {
                if let (None, true, Some(s)) = (&self.found, id.as_str() == self.key, id.span()) {
                    let inside = self
                        .within
                        .as_ref()
                        .is_none_or(|w| w.start <= s.start && s.end <= w.end);
                    if inside {
                        self.found = Some(s);
                    }
                }
            }
            visit::visit_traversal_operator(self, node);
        }
    }
    let mut f = Finder {
        key,
        within,
        found: None,
    };
    f.visit_expr(root);
    f.found
}

/// Replace `can(X)` by whether X evaluates. Inside `for` expressions the iteration variables
/// are not known up front, so `can` there falls back to the eager function (which returns
/// true, or propagates X's error).
fn rewrite_can(e: &mut hcl::Expression, ctx: &Context<'_>, in_for: bool) {
    use hcl::Expression as E;
    match e {
        E::FuncCall(call) => {
            for a in call.args.iter_mut() {
                rewrite_can(a, ctx, in_for);
            }
            if !in_for
                && !call.name.is_namespaced()
                && call.name.name.as_str() == "can"
                && call.args.len() == 1
                && !call.expand_final
            {
                let ok = call.args[0].evaluate(ctx).is_ok();
                *e = E::Bool(ok);
            }
        }
        E::Array(items) => items.iter_mut().for_each(|i| rewrite_can(i, ctx, in_for)),
        E::Object(obj) => obj
            .iter_mut()
            .for_each(|(_, v)| rewrite_can(v, ctx, in_for)),
        E::Traversal(t) => {
            rewrite_can(&mut t.expr, ctx, in_for);
            for op in t.operators.iter_mut() {
                if let hcl::expr::TraversalOperator::Index(i) = op {
                    rewrite_can(i, ctx, in_for);
                }
            }
        }
        E::Parenthesis(p) => rewrite_can(p, ctx, in_for),
        E::Conditional(c) => {
            rewrite_can(&mut c.cond_expr, ctx, in_for);
            rewrite_can(&mut c.true_expr, ctx, in_for);
            rewrite_can(&mut c.false_expr, ctx, in_for);
        }
        E::Operation(op) => match op.as_mut() {
            hcl::expr::Operation::Unary(u) => rewrite_can(&mut u.expr, ctx, in_for),
            hcl::expr::Operation::Binary(b) => {
                rewrite_can(&mut b.lhs_expr, ctx, in_for);
                rewrite_can(&mut b.rhs_expr, ctx, in_for);
            }
        },
        E::ForExpr(f) => {
            rewrite_can(&mut f.collection_expr, ctx, in_for);
            if let Some(k) = f.key_expr.as_mut() {
                rewrite_can(k, ctx, true);
            }
            rewrite_can(&mut f.value_expr, ctx, true);
            if let Some(c) = f.cond_expr.as_mut() {
                rewrite_can(c, ctx, true);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Type constraints
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Map(Box<Type>),
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::Any => f.write_str("any"),
            Type::String => f.write_str("string"),
            Type::Number => f.write_str("number"),
            Type::Bool => f.write_str("bool"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Map(t) => write!(f, "map({t})"),
        }
    }
}

const TYPE_NAMES: &[&str] = &["string", "number", "bool", "any", "list", "map"];

/// Parse a type constraint expression (`string`, `list(number)`, ...).
pub fn parse_type(expr: &ee::Expression, file: &SourceFile) -> Result<Type, Diagnostic> {
    let bad = |span: Option<Range<usize>>, what: String, hint: Option<String>| {
        let (loc, span) = file.at(&span);
        Diagnostic::error("Invalid type specification")
            .detail(what)
            .hint(hint.unwrap_or_else(|| {
                "use string, number, bool, list(TYPE), map(TYPE) or any".to_string()
            }))
            .at(loc, span)
    };
    match expr {
        ee::Expression::Variable(v) => match v.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            "list" | "map" => Err(bad(
                v.span(),
                format!("`{}` needs an element type.", v.as_str()),
                Some(format!(
                    "write {}(string) (or another element type)",
                    v.as_str()
                )),
            )),
            other => Err(bad(
                v.span(),
                format!("\"{other}\" is not a type."),
                did_you_mean_hint(other, TYPE_NAMES.iter().copied()),
            )),
        },
        ee::Expression::FuncCall(call) if !call.name.is_namespaced() => {
            let name = call.name.name.as_str();
            let inner = |call: &ee::FuncCall| -> Result<Type, Diagnostic> {
                if call.args.len() != 1 {
                    return Err(bad(
                        call.span(),
                        format!("{name}(...) takes exactly one element type."),
                        Some(format!("write {name}(string)")),
                    ));
                }
                parse_type(call.args.get(0).expect("one arg"), file)
            };
            match name {
                "list" | "set" => Ok(Type::List(Box::new(inner(call)?))),
                "map" => Ok(Type::Map(Box::new(inner(call)?))),
                other => Err(bad(
                    call.name.name.span(),
                    format!("\"{other}(...)\" is not a type constructor."),
                    did_you_mean_hint(other, ["list", "map"])
                        .or(Some("use list(TYPE) or map(TYPE)".to_string())),
                )),
            }
        }
        ee::Expression::String(s) => Err(bad(
            s.span(),
            format!(
                "Type constraints are keywords, not strings: \"{}\".",
                s.as_str()
            ),
            Some(format!("remove the quotes: type = {}", s.as_str())),
        )),
        other => Err(bad(other.span(), "This is not a type.".to_string(), None)),
    }
}

/// Short description of a value's type, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Convert `v` to type `t` the way Terraform does (numbers and bools become strings, numeric
/// strings become numbers, "true"/"false" become bools).
pub fn convert(v: Value, t: &Type) -> Result<Value, String> {
    match (t, v) {
        (Type::Any, v) => Ok(v),
        (_, Value::Null) => Ok(Value::Null),
        (Type::String, Value::String(s)) => Ok(Value::String(s)),
        (Type::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (Type::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (Type::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (Type::Number, Value::String(s)) => parse_number(&s)
            .map(Value::Number)
            .ok_or_else(|| format!("a number is required, but \"{s}\" is not a number")),
        (Type::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (Type::Bool, Value::String(s)) if s == "true" || s == "false" => {
            Ok(Value::Bool(s == "true"))
        }
        (Type::List(et), Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, x)| convert(x, et).map_err(|e| format!("element {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (Type::Map(et), Value::Object(m)) => m
            .into_iter()
            .map(|(k, x)| {
                convert(x, et)
                    .map(|x| (k.clone(), x))
                    .map_err(|e| format!("element \"{k}\": {e}"))
            })
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object),
        (t, v) => Err(format!(
            "a {t} is required, but this is a {}",
            type_name(&v)
        )),
    }
}

pub fn parse_number(s: &str) -> Option<Number> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::from(i));
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------

fn declare_functions(ctx: &mut Context<'_>) {
    use ParamType as P;
    let s = || P::String;
    let any = || P::Any;
    let list = || P::Array(Box::new(P::Any));
    ctx.declare_func("upper", FuncDef::builder().param(s()).build(f_upper));
    ctx.declare_func("lower", FuncDef::builder().param(s()).build(f_lower));
    ctx.declare_func(
        "format",
        FuncDef::builder()
            .param(s())
            .variadic_param(any())
            .build(f_format),
    );
    ctx.declare_func(
        "join",
        FuncDef::builder()
            .param(s())
            .variadic_param(list())
            .build(f_join),
    );
    ctx.declare_func(
        "split",
        FuncDef::builder().params([s(), s()]).build(f_split),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder().variadic_param(list()).build(f_concat),
    );
    ctx.declare_func("length", FuncDef::builder().param(any()).build(f_length));
    ctx.declare_func(
        "contains",
        FuncDef::builder().params([list(), any()]).build(f_contains),
    );
    ctx.declare_func(
        "lookup",
        FuncDef::builder()
            .params([P::Object(Box::new(P::Any)), s()])
            .variadic_param(any())
            .build(f_lookup),
    );
    ctx.declare_func(
        "coalesce",
        FuncDef::builder().variadic_param(any()).build(f_coalesce),
    );
    ctx.declare_func(
        "min",
        FuncDef::builder().variadic_param(P::Number).build(f_min),
    );
    ctx.declare_func(
        "max",
        FuncDef::builder().variadic_param(P::Number).build(f_max),
    );
    ctx.declare_func(
        "tostring",
        FuncDef::builder().param(any()).build(f_tostring),
    );
    ctx.declare_func(
        "tonumber",
        FuncDef::builder().param(any()).build(f_tonumber),
    );
    ctx.declare_func("can", FuncDef::builder().param(any()).build(f_can));
    ctx.declare_func(
        "regex",
        FuncDef::builder().params([s(), s()]).build(f_regex),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder().params([s(), s(), s()]).build(f_replace),
    );
    ctx.declare_func(
        "trimprefix",
        FuncDef::builder().params([s(), s()]).build(f_trimprefix),
    );
    ctx.declare_func(
        "trimsuffix",
        FuncDef::builder().params([s(), s()]).build(f_trimsuffix),
    );
}

fn str_arg(args: &FuncArgs, i: usize) -> Result<&str, String> {
    args.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("argument {} must be a string", i + 1))
}

fn f_upper(a: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(str_arg(&a, 0)?.to_uppercase()))
}

fn f_lower(a: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(str_arg(&a, 0)?.to_lowercase()))
}

fn display_value(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("a null value cannot be converted to a string".into()),
        other => serde_json::to_string(other).map_err(|e| e.to_string()),
    }
}

fn f_format(a: FuncArgs) -> Result<Value, String> {
    let fmt = str_arg(&a, 0)?;
    let mut args = a.iter().skip(1);
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next().ok_or("format string ends with a lone %")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let v = args
            .next()
            .ok_or_else(|| format!("not enough arguments for %{verb}"))?;
        match verb {
            's' | 'v' => out.push_str(&display_value(v)?),
            'q' => {
                out.push_str(&serde_json::to_string(&display_value(v)?).map_err(|e| e.to_string())?)
            }
            'd' => {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => parse_number(s).and_then(|n| n.as_f64()),
                    _ => None,
                }
                .ok_or_else(|| format!("%d requires a number, got {}", type_name(v)))?;
                if n.fract() != 0.0 {
                    return Err(format!("%d requires a whole number, got {n}"));
                }
                out.push_str(&(n as i64).to_string());
            }
            other => {
                return Err(format!(
                    "unsupported format verb %{other}; use %s, %d, %v or %q"
                ))
            }
        }
    }
    if args.next().is_some() {
        return Err("too many arguments for the format string".into());
    }
    Ok(Value::String(out))
}

fn f_join(a: FuncArgs) -> Result<Value, String> {
    let sep = str_arg(&a, 0)?;
    let mut parts = Vec::new();
    for list in a.iter().skip(1) {
        for v in list.as_array().into_iter().flatten() {
            parts.push(display_value(v)?);
        }
    }
    Ok(Value::String(parts.join(sep)))
}

fn f_split(a: FuncArgs) -> Result<Value, String> {
    let sep = str_arg(&a, 0)?;
    let s = str_arg(&a, 1)?;
    if sep.is_empty() {
        return Ok(Value::Array(
            s.chars().map(|c| Value::String(c.to_string())).collect(),
        ));
    }
    Ok(Value::Array(
        s.split(sep).map(|p| Value::String(p.to_string())).collect(),
    ))
}

fn f_concat(a: FuncArgs) -> Result<Value, String> {
    Ok(Value::Array(
        a.iter()
            .flat_map(|l| l.as_array().cloned().unwrap_or_default())
            .collect(),
    ))
}

fn f_length(a: FuncArgs) -> Result<Value, String> {
    let n = match &a[0] {
        Value::String(s) => s.chars().count(),
        Value::Array(v) => v.len(),
        Value::Object(m) => m.len(),
        other => return Err(format!("length of a {} is not defined", type_name(other))),
    };
    Ok(Value::from(n as u64))
}

fn f_contains(a: FuncArgs) -> Result<Value, String> {
    let list = a[0].as_array().ok_or("argument 1 must be a list")?;
    Ok(Value::Bool(list.contains(&a[1])))
}

fn f_lookup(a: FuncArgs) -> Result<Value, String> {
    let m = a[0].as_object().ok_or("argument 1 must be a map")?;
    let k = str_arg(&a, 1)?;
    match (m.get(k), a.get(2)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.clone()),
        (None, None) => Err(format!(
            "the map has no element \"{k}\"; pass a default as the third argument"
        )),
    }
}

fn f_coalesce(a: FuncArgs) -> Result<Value, String> {
    a.iter()
        .find(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "no non-null, non-empty argument".to_string())
}

fn numbers(a: &FuncArgs) -> Result<Vec<f64>, String> {
    if a.is_empty() {
        return Err("at least one number is required".into());
    }
    a.iter()
        .map(|v| {
            v.as_number()
                .and_then(Number::as_f64)
                .ok_or_else(|| "arguments must be numbers".to_string())
        })
        .collect()
}

fn f_min(a: FuncArgs) -> Result<Value, String> {
    Ok(num(numbers(&a)?.into_iter().fold(f64::INFINITY, f64::min)))
}

fn f_max(a: FuncArgs) -> Result<Value, String> {
    Ok(num(numbers(&a)?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max)))
}

fn f_tostring(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Null => Ok(Value::Null),
        Value::Array(_) | Value::Object(_) => {
            Err(format!("cannot convert a {} to a string", type_name(&a[0])))
        }
        v => Ok(Value::String(display_value(v)?)),
    }
}

fn f_tonumber(a: FuncArgs) -> Result<Value, String> {
    match &a[0] {
        Value::Null => Ok(Value::Null),
        Value::Number(n) => Ok(Value::Number(*n)),
        Value::String(s) => parse_number(s)
            .map(Value::Number)
            .ok_or_else(|| format!("cannot convert \"{s}\" to a number")),
        v => Err(format!("cannot convert a {} to a number", type_name(v))),
    }
}

fn f_can(_: FuncArgs) -> Result<Value, String> {
    Ok(Value::Bool(true))
}

fn f_regex(a: FuncArgs) -> Result<Value, String> {
    let re = regex::Regex::new(str_arg(&a, 0)?)
        .map_err(|e| format!("invalid regular expression: {e}"))?;
    let s = str_arg(&a, 1)?;
    let caps = re
        .captures(s)
        .ok_or_else(|| "pattern did not match any part of the given string".to_string())?;
    let named: Vec<&str> = re.capture_names().flatten().collect();
    if re.captures_len() == 1 {
        return Ok(Value::String(caps[0].to_string()));
    }
    let get = |i: usize| -> Value {
        caps.get(i)
            .map(|m| Value::String(m.as_str().to_string()))
            .unwrap_or(Value::Null)
    };
    if !named.is_empty() {
        let mut m = Map::new();
        for n in named {
            let v = caps
                .name(n)
                .map(|m| Value::String(m.as_str().to_string()))
                .unwrap_or(Value::Null);
            m.insert(n.to_string(), v);
        }
        return Ok(Value::Object(m));
    }
    Ok(Value::Array((1..re.captures_len()).map(get).collect()))
}

fn f_replace(a: FuncArgs) -> Result<Value, String> {
    let s = str_arg(&a, 0)?;
    let sub = str_arg(&a, 1)?;
    let rep = str_arg(&a, 2)?;
    if sub.len() >= 2 && sub.starts_with('/') && sub.ends_with('/') {
        let re = regex::Regex::new(&sub[1..sub.len() - 1])
            .map_err(|e| format!("invalid regular expression: {e}"))?;
        return Ok(Value::String(re.replace_all(s, rep).into_owned()));
    }
    Ok(Value::String(s.replace(sub, rep)))
}

fn f_trimprefix(a: FuncArgs) -> Result<Value, String> {
    let s = str_arg(&a, 0)?;
    let p = str_arg(&a, 1)?;
    Ok(Value::String(s.strip_prefix(p).unwrap_or(s).to_string()))
}

fn f_trimsuffix(a: FuncArgs) -> Result<Value, String> {
    let s = str_arg(&a, 0)?;
    let p = str_arg(&a, 1)?;
    Ok(Value::String(s.strip_suffix(p).unwrap_or(s).to_string()))
}
