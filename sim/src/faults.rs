//! Fault injection: the `--faults SPEC` grammar and its runtime state.

use std::fmt;
use std::time::Duration;

/// The error codes an update may fail with (model enum `ErrorCode`).
pub const ERROR_CODES: &[&str] = &[
    "SubnetNotFound",
    "SecurityGroupNotFound",
    "EniLimitReached",
    "IpNotAvailable",
    "AccessDenied",
    "OperationNotPermitted",
    "VpcIdNotFound",
    "Unknown",
    "NodeCreationFailure",
    "PodEvictionFailure",
    "InsufficientFreeAddresses",
    "ClusterUnreachable",
    "InsufficientNumberOfReplicas",
    "ConfigurationConflict",
    "AdmissionRequestDenied",
    "UnsupportedAddonModification",
    "K8sResourceNotFound",
];

/// google.rpc codes a GKE operation may fail with (`fail=CLUSTER[/POOL]:CODE`).
pub const GKE_ERROR_CODES: &[&str] = &[
    "INTERNAL",
    "UNKNOWN",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "PERMISSION_DENIED",
    "ABORTED",
];

/// AKS error codes an operation may fail with (`fail=AKSCLUSTER[/POOL]:CODE`).
pub const AKS_ERROR_CODES: &[&str] = crate::aks::ERROR_CODES;

const FORMS: &str = "accepted items: seed=N, throttle=RATE (429), error500=RATE, error503=RATE, \
reset=RATE (connection closed with no response), truncate=RATE (body cut mid-JSON), \
garbage=RATE (200 with a non-JSON body), stall=RATE (response held back stall_for), \
where RATE is 0..1 or `first` (the first request to each endpoint); each of these kinds \
prefixed `kube:` (e.g. kube:error500=first) strikes the simulated Kubernetes API instead of the cloud APIs, \
retry_after=SECONDS \
(429s and 503s carry Retry-After), stall_for=DURATION (default 65s), \
latency=DURATION (e.g. 20ms, 1s), fail=CLUSTER[/NODEGROUP|/NODEPOOL|/addon:NAME]:ERRORCODE[:MESSAGE], \
hang=CLUSTER[/NODEGROUP|/NODEPOOL|/AGENTPOOL|/addon:NAME], notready=CLUSTER/NODEGROUP|NODEPOOL|AGENTPOOL, \
jobfail=K3SCLUSTER/PLAN[:MESSAGE], kubeadmfail=KUBEADMCLUSTER/NODE[:MESSAGE], \
kubedown=CLUSTER:DURATION (its Kubernetes API drops every connection for DURATION from the first eviction)";

/// A fault on one cloud API request (EKS, GKE or ARM), drawn per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 429 with the cloud's throttling error.
    Throttle,
    /// 500 with the cloud's internal-error body.
    Error500,
    /// 503 with the cloud's unavailable body.
    Error503,
    /// The request is carried out, then the connection is closed without a response.
    Reset,
    /// The request is carried out; its response body stops short of its Content-Length.
    Truncate,
    /// The request is carried out; the answer is a 200 whose body is not JSON.
    Garbage,
    /// The request is carried out; its response is held back for `stall_for`.
    Stall,
}

impl Fault {
    /// Every kind, in the order they are drawn (throttle and error500 first, so seeds
    /// written before the other kinds existed draw the same sequence).
    pub const ALL: [Fault; 7] = [
        Fault::Throttle,
        Fault::Error500,
        Fault::Error503,
        Fault::Reset,
        Fault::Truncate,
        Fault::Garbage,
        Fault::Stall,
    ];

    /// The `--faults` key.
    pub fn key(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Error500 => "error500",
            Fault::Error503 => "error503",
            Fault::Reset => "reset",
            Fault::Truncate => "truncate",
            Fault::Garbage => "garbage",
            Fault::Stall => "stall",
        }
    }

    /// True when the request is refused before it is carried out (an error status);
    /// otherwise it is carried out and only its response is damaged, which is the case
    /// that tests whether a client's retry of a mutation is a replay.
    pub fn refuses(self) -> bool {
        matches!(self, Fault::Throttle | Fault::Error500 | Fault::Error503)
    }
}

/// How often a kind of fault strikes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// This fraction of requests, at random (0 = never).
    Random(f64),
    /// The first request to each endpoint (method and route), and no other.
    First,
}

/// The resource a `fail=` or `hang=` item targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Cluster(String),
    NodeGroup(String, String),
    Addon(String, String),
}

impl Target {
    pub(crate) fn matches(
        &self,
        cluster: &str,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> bool {
        match self {
            Target::Cluster(c) => c == cluster && nodegroup.is_none() && addon.is_none(),
            Target::NodeGroup(c, n) => c == cluster && nodegroup == Some(n.as_str()),
            Target::Addon(c, a) => c == cluster && addon == Some(a.as_str()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cluster(c) => write!(f, "{c}"),
            Target::NodeGroup(c, n) => write!(f, "{c}/{n}"),
            Target::Addon(c, a) => write!(f, "{c}/addon:{a}"),
        }
    }
}

/// A `fail=` item: the next update started on `target` ends `Failed` with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailFault {
    pub target: Target,
    pub code: String,
    pub message: Option<String>,
}

/// A `jobfail=` item: the next system-upgrade-controller Job of `plan` in the K3s/RKE2
/// cluster `cluster` fails with `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFail {
    pub cluster: String,
    pub plan: String,
    pub message: Option<String>,
}

/// A `kubeadmfail=` item: the next `kubeadm upgrade apply` / `kubeadm upgrade node` on host
/// `node` of the kubeadm cluster `cluster` fails with `message` (500) and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmFail {
    pub cluster: String,
    pub node: String,
    pub message: Option<String>,
}

/// Parsed `--faults` specification. See the crate README for the grammar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    pub seed: Option<u64>,
    /// Per-request faults on the cloud APIs (EKS, GKE, ARM) and how often each strikes
    /// (absent: never).
    pub rates: Vec<(Fault, Rate)>,
    /// `kube:KIND=RATE`: per-request faults on the clusters' Kubernetes APIs. Kept apart
    /// from `rates` so a cloud fault spec never strikes the drains and node waits by
    /// surprise, and a kube spec leaves the cloud calls clean.
    pub kube_rates: Vec<(Fault, Rate)>,
    /// `retry_after=SECONDS`: injected 429s and 503s carry `Retry-After`.
    pub retry_after: Option<u32>,
    /// `stall_for=DURATION`: how long a stalled response is held back.
    pub stall_for: Option<Duration>,
    pub latency: Duration,
    pub fail: Vec<FailFault>,
    pub hang: Vec<Target>,
    /// `notready=CLUSTER/NODEGROUP`: new nodes of that node group never become Ready.
    pub notready: Vec<Target>,
    /// `jobfail=CLUSTER/PLAN[:MESSAGE]`: the next SUC Job of that plan fails.
    pub jobfail: Vec<JobFail>,
    /// `kubeadmfail=CLUSTER/NODE[:MESSAGE]`: the next kubeadm upgrade on that host fails.
    pub kubeadmfail: Vec<KubeadmFail>,
    /// `kubedown=CLUSTER:DURATION`: that cluster's Kubernetes API goes away for DURATION
    /// (real time) from the first eviction it receives.
    pub kubedown: Vec<(String, Duration)>,
}

/// Held back longer than any client's default per-attempt timeout (EKS 30 s, ARM 60 s).
pub const DEFAULT_STALL: Duration = Duration::from_secs(65);

fn bad(item: &str, why: &str) -> String {
    format!("invalid fault item `{item}`: {why}; {FORMS}")
}

fn parse_rate(item: &str, v: &str) -> Result<f64, String> {
    let r: f64 = v
        .parse()
        .map_err(|_| bad(item, "rate must be a number between 0 and 1"))?;
    if !(0.0..=1.0).contains(&r) {
        return Err(bad(item, "rate must be between 0 and 1"));
    }
    Ok(r)
}

fn parse_fault_rate(item: &str, v: &str) -> Result<Rate, String> {
    if v == "first" {
        return Ok(Rate::First);
    }
    parse_rate(item, v).map(Rate::Random)
}

fn parse_duration(item: &str, v: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(bad(item, "duration needs a unit: ms, s or m (e.g. 20ms)"));
    };
    let n: f64 = num
        .parse()
        .map_err(|_| bad(item, "duration must be a number with a unit (e.g. 20ms)"))?;
    if !(0.0..=3600.0).contains(&(n * scale)) {
        return Err(bad(item, "duration must be between 0 and 1h"));
    }
    Ok(Duration::from_secs_f64(n * scale))
}

fn check_name(item: &str, what: &str, s: &str) -> Result<String, String> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(bad(
            item,
            &format!("{what} name `{s}` is empty or has invalid characters"),
        ));
    }
    Ok(s.to_string())
}

/// Parse `CLUSTER[/NODEGROUP|/addon:NAME]` from the front of `v`; returns the target and the
/// rest after the target (starting after a `:` if any).
fn parse_target<'a>(item: &str, v: &'a str) -> Result<(Target, Option<&'a str>), String> {
    let (cluster, after) = match v.find(['/', ':']) {
        Some(i) => (&v[..i], Some(&v[i..])),
        None => (v, None),
    };
    let cluster = check_name(item, "cluster", cluster)?;
    let Some(after) = after else {
        return Ok((Target::Cluster(cluster), None));
    };
    if let Some(rest) = after.strip_prefix(':') {
        return Ok((Target::Cluster(cluster), Some(rest)));
    }
    let after = &after[1..]; // after '/'
    if let Some(addon) = after.strip_prefix("addon:") {
        let (name, rest) = match addon.find(':') {
            Some(i) => (&addon[..i], Some(&addon[i + 1..])),
            None => (addon, None),
        };
        let name = check_name(item, "addon", name)?;
        return Ok((Target::Addon(cluster, name), rest));
    }
    let (ng, rest) = match after.find(':') {
        Some(i) => (&after[..i], Some(&after[i + 1..])),
        None => (after, None),
    };
    let ng = check_name(item, "node group", ng)?;
    Ok((Target::NodeGroup(cluster, ng), rest))
}

fn rate_in(rates: &[(Fault, Rate)], kind: Fault) -> Rate {
    rates
        .iter()
        .find(|(f, _)| *f == kind)
        .map_or(Rate::Random(0.0), |(_, r)| *r)
}

/// A later item for the same kind replaces the earlier one.
fn set_rate(rates: &mut Vec<(Fault, Rate)>, kind: Fault, rate: Rate) {
    rates.retain(|(f, _)| *f != kind);
    rates.push((kind, rate));
    rates.sort_by_key(|(f, _)| *f);
}

impl FaultSpec {
    /// How often `kind` strikes a cloud API request.
    pub fn rate(&self, kind: Fault) -> Rate {
        rate_in(&self.rates, kind)
    }

    /// How often `kind` strikes a Kubernetes API request.
    pub fn kube_rate(&self, kind: Fault) -> Rate {
        rate_in(&self.kube_rates, kind)
    }

    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// True when nothing is injected.
    pub fn is_none(&self) -> bool {
        self.rates
            .iter()
            .chain(&self.kube_rates)
            .all(|(_, r)| *r == Rate::Random(0.0))
            && self.latency.is_zero()
            && self.kubedown.is_empty()
            && self.fail.is_empty()
            && self.hang.is_empty()
            && self.notready.is_empty()
            && self.jobfail.is_empty()
            && self.kubeadmfail.is_empty()
    }

    /// Parse a SPEC: comma-separated items (see README). Empty or `none` means no faults.
    pub fn parse(s: &str) -> Result<FaultSpec, String> {
        let mut spec = FaultSpec::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(spec);
        }
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(bad(item, "expected KEY=VALUE"));
            };
            let value = value.trim();
            let key = key.trim();
            if let Some(k) = key.strip_prefix("kube:") {
                let Some(kind) = Fault::ALL.into_iter().find(|f| f.key() == k) else {
                    return Err(bad(
                        item,
                        &format!(
                            "`kube:` takes a per-request kind ({}), not `{k}`",
                            Fault::ALL.map(Fault::key).join(", ")
                        ),
                    ));
                };
                set_rate(&mut spec.kube_rates, kind, parse_fault_rate(item, value)?);
                continue;
            }
            match key {
                "seed" => {
                    spec.seed = Some(
                        value
                            .parse()
                            .map_err(|_| bad(item, "seed must be a non-negative integer"))?,
                    )
                }
                k if Fault::ALL.iter().any(|f| f.key() == k) => {
                    let kind = Fault::ALL
                        .into_iter()
                        .find(|f| f.key() == k)
                        .expect("listed");
                    set_rate(&mut spec.rates, kind, parse_fault_rate(item, value)?);
                }
                "retry_after" => {
                    let secs: u32 = value.parse().map_err(|_| {
                        bad(item, "retry_after takes whole seconds, e.g. retry_after=2")
                    })?;
                    if secs > 3600 {
                        return Err(bad(item, "retry_after must be at most 3600 seconds"));
                    }
                    spec.retry_after = Some(secs);
                }
                "stall_for" => spec.stall_for = Some(parse_duration(item, value)?),
                "kubedown" => {
                    let Some((c, d)) = value.split_once(':') else {
                        return Err(bad(
                            item,
                            "kubedown takes CLUSTER:DURATION (e.g. kubedown=prod-eu:60s)",
                        ));
                    };
                    let d = parse_duration(item, d)?;
                    if d.is_zero() {
                        return Err(bad(item, "kubedown needs a duration above 0"));
                    }
                    spec.kubedown.push((check_name(item, "cluster", c)?, d));
                }
                "latency" => spec.latency = parse_duration(item, value)?,
                "fail" => {
                    let (target, rest) = parse_target(item, value)?;
                    let Some(rest) = rest else {
                        return Err(bad(item, "missing :ERRORCODE after the target"));
                    };
                    let (code, message) = match rest.split_once(':') {
                        Some((c, m)) => (c, Some(m.to_string())),
                        None => (rest, None),
                    };
                    if !ERROR_CODES.contains(&code)
                        && !GKE_ERROR_CODES.contains(&code)
                        && !AKS_ERROR_CODES.contains(&code)
                    {
                        return Err(bad(
                            item,
                            &format!(
                                "unknown error code `{code}` (EKS: {}; GKE: {}; AKS: {})",
                                ERROR_CODES.join(", "),
                                GKE_ERROR_CODES.join(", "),
                                AKS_ERROR_CODES.join(", ")
                            ),
                        ));
                    }
                    spec.fail.push(FailFault {
                        target,
                        code: code.to_string(),
                        message: message.filter(|m| !m.is_empty()),
                    });
                }
                "hang" => {
                    let (target, rest) = parse_target(item, value)?;
                    if rest.is_some() {
                        return Err(bad(item, "hang takes only a target"));
                    }
                    spec.hang.push(target);
                }
                "notready" => {
                    let (target, rest) = parse_target(item, value)?;
                    if rest.is_some() || !matches!(target, Target::NodeGroup(..)) {
                        return Err(bad(item, "notready takes CLUSTER/NODEGROUP"));
                    }
                    spec.notready.push(target);
                }
                "jobfail" => {
                    let (target, message) = match value.split_once(':') {
                        Some((t, m)) => (t, Some(m.to_string())),
                        None => (value, None),
                    };
                    let Some((c, p)) = target.split_once('/') else {
                        return Err(bad(item, "jobfail takes CLUSTER/PLAN[:MESSAGE]"));
                    };
                    spec.jobfail.push(JobFail {
                        cluster: check_name(item, "cluster", c)?,
                        plan: check_name(item, "plan", p)?,
                        message: message.filter(|m| !m.is_empty()),
                    });
                }
                "kubeadmfail" => {
                    let (target, message) = match value.split_once(':') {
                        Some((t, m)) => (t, Some(m.to_string())),
                        None => (value, None),
                    };
                    let Some((c, n)) = target.split_once('/') else {
                        return Err(bad(item, "kubeadmfail takes CLUSTER/NODE[:MESSAGE]"));
                    };
                    spec.kubeadmfail.push(KubeadmFail {
                        cluster: check_name(item, "cluster", c)?,
                        node: check_name(item, "node", n)?,
                        message: message.filter(|m| !m.is_empty()),
                    });
                }
                other => return Err(bad(item, &format!("unknown key `{other}`"))),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        for (prefix, rates) in [("", &self.rates), ("kube:", &self.kube_rates)] {
            for (kind, rate) in rates {
                match rate {
                    Rate::First => parts.push(format!("{prefix}{}=first", kind.key())),
                    Rate::Random(r) if *r > 0.0 => {
                        parts.push(format!("{prefix}{}={r}", kind.key()))
                    }
                    Rate::Random(_) => {}
                }
            }
        }
        if let Some(s) = self.retry_after {
            parts.push(format!("retry_after={s}"));
        }
        if let Some(d) = self.stall_for {
            parts.push(format!("stall_for={}ms", d.as_millis()));
        }
        for (c, d) in &self.kubedown {
            parts.push(format!("kubedown={c}:{}ms", d.as_millis()));
        }
        if !self.latency.is_zero() {
            parts.push(format!("latency={}ms", self.latency.as_millis()));
        }
        for fl in &self.fail {
            match &fl.message {
                Some(m) => parts.push(format!("fail={}:{}:{}", fl.target, fl.code, m)),
                None => parts.push(format!("fail={}:{}", fl.target, fl.code)),
            }
        }
        for h in &self.hang {
            parts.push(format!("hang={h}"));
        }
        for t in &self.notready {
            parts.push(format!("notready={t}"));
        }
        for j in &self.jobfail {
            match &j.message {
                Some(m) => parts.push(format!("jobfail={}/{}:{m}", j.cluster, j.plan)),
                None => parts.push(format!("jobfail={}/{}", j.cluster, j.plan)),
            }
        }
        for k in &self.kubeadmfail {
            match &k.message {
                Some(m) => parts.push(format!("kubeadmfail={}/{}:{m}", k.cluster, k.node)),
                None => parts.push(format!("kubeadmfail={}/{}", k.cluster, k.node)),
            }
        }
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", parts.join(","))
        }
    }
}

/// A realistic default message for a failed update.
pub(crate) fn default_message(code: &str, target: &Target) -> String {
    let ng = match target {
        Target::NodeGroup(_, n) => n.as_str(),
        _ => "",
    };
    match code {
        "PodEvictionFailure" => format!(
            "Reached max retries while trying to evict pods from nodes in node group {ng}"
        ),
        "NodeCreationFailure" => "Instances failed to join the kubernetes cluster".into(),
        "ClusterUnreachable" => {
            "Amazon EKS was unable to communicate with the Kubernetes cluster API server".into()
        }
        "InsufficientFreeAddresses" => {
            "One or more of the subnets associated with your cluster does not have enough available IP addresses".into()
        }
        "IpNotAvailable" => "Subnet does not have enough available IP addresses".into(),
        "AccessDenied" => "Amazon EKS is failing to authenticate or authorize with your Kubernetes cluster API server".into(),
        "ConfigurationConflict" => "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode".into(),
        "InsufficientNumberOfReplicas" => "The add-on is unhealthy because it doesn't have the desired number of replicas".into(),
        "AdmissionRequestDenied" => "admission webhook denied the request".into(),
        "SubnetNotFound" => "The subnet associated with the resource could not be found".into(),
        "SecurityGroupNotFound" => "The security group associated with the resource could not be found".into(),
        "EniLimitReached" => "You have reached the elastic network interface limit for your account".into(),
        "VpcIdNotFound" => "The VPC associated with the cluster could not be found".into(),
        "OperationNotPermitted" => "The service role associated with the cluster doesn't have the required permissions".into(),
        "UnsupportedAddonModification" => "Amazon EKS detected a modification of an add-on field that it manages".into(),
        "K8sResourceNotFound" => "A Kubernetes resource managed by the add-on could not be found".into(),
        _ => "An unknown error occurred during the update".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_example() {
        let s = FaultSpec::parse(
            "seed=7,throttle=0.2,error500=0.1,latency=20ms,fail=prod-eu/general:PodEvictionFailure,hang=prod-eu",
        )
        .unwrap();
        assert_eq!(s.seed, Some(7));
        assert_eq!(
            s.rates,
            vec![
                (Fault::Throttle, Rate::Random(0.2)),
                (Fault::Error500, Rate::Random(0.1))
            ]
        );
        assert_eq!(s.latency, Duration::from_millis(20));
        assert_eq!(
            s.fail,
            vec![FailFault {
                target: Target::NodeGroup("prod-eu".into(), "general".into()),
                code: "PodEvictionFailure".into(),
                message: None
            }]
        );
        assert_eq!(s.hang, vec![Target::Cluster("prod-eu".into())]);
        // Display round-trips.
        assert_eq!(FaultSpec::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn parses_targets() {
        let s = FaultSpec::parse(
            "fail=c:Unknown:boom now,fail=c/addon:coredns:ConfigurationConflict,hang=c/addon:vpc-cni,hang=c/ng1",
        )
        .unwrap();
        assert_eq!(s.fail[0].target, Target::Cluster("c".into()));
        assert_eq!(s.fail[0].message.as_deref(), Some("boom now"));
        assert_eq!(
            s.fail[1].target,
            Target::Addon("c".into(), "coredns".into())
        );
        assert_eq!(s.hang[0], Target::Addon("c".into(), "vpc-cni".into()));
        assert_eq!(s.hang[1], Target::NodeGroup("c".into(), "ng1".into()));
        let n = FaultSpec::parse("notready=c/ng1").unwrap();
        assert_eq!(
            n.notready,
            vec![Target::NodeGroup("c".into(), "ng1".into())]
        );
        assert_eq!(FaultSpec::parse(&n.to_string()).unwrap(), n);
        assert!(FaultSpec::parse("notready=c").is_err());
        assert!(FaultSpec::parse("").unwrap().is_none());
        assert!(FaultSpec::parse("none").unwrap().is_none());
    }

    #[test]
    fn parses_kubeadmfail() {
        let s = FaultSpec::parse(
            "kubeadmfail=lab/cp1,kubeadmfail=lab/cp2:[upgrade/apply] FATAL: boom: it broke",
        )
        .unwrap();
        assert_eq!(
            s.kubeadmfail,
            vec![
                KubeadmFail {
                    cluster: "lab".into(),
                    node: "cp1".into(),
                    message: None
                },
                KubeadmFail {
                    cluster: "lab".into(),
                    node: "cp2".into(),
                    message: Some("[upgrade/apply] FATAL: boom: it broke".into())
                }
            ]
        );
        assert!(!s.is_none());
        assert_eq!(FaultSpec::parse(&s.to_string()).unwrap(), s);
        assert!(FaultSpec::parse("kubeadmfail=lab").is_err());
        assert!(FaultSpec::parse("kubeadmfail=lab/").is_err());
    }

    #[test]
    fn parses_response_faults_first_mode_and_kubedown() {
        let s = FaultSpec::parse(
            "error503=0.3,reset=first,truncate=0.1,garbage=first,stall=0.05,retry_after=2,stall_for=3s,kubedown=prod-eu:60s",
        )
        .unwrap();
        assert_eq!(s.rate(Fault::Error503), Rate::Random(0.3));
        assert_eq!(s.rate(Fault::Reset), Rate::First);
        assert_eq!(s.rate(Fault::Truncate), Rate::Random(0.1));
        assert_eq!(s.rate(Fault::Garbage), Rate::First);
        assert_eq!(s.rate(Fault::Stall), Rate::Random(0.05));
        assert_eq!(s.rate(Fault::Throttle), Rate::Random(0.0));
        assert_eq!(s.retry_after, Some(2));
        assert_eq!(s.stall_for, Some(Duration::from_secs(3)));
        assert_eq!(
            s.kubedown,
            vec![("prod-eu".to_string(), Duration::from_secs(60))]
        );
        assert!(!s.is_none());
        assert_eq!(FaultSpec::parse(&s.to_string()).unwrap(), s);
        // A later item for the same kind replaces the earlier one.
        let s = FaultSpec::parse("reset=0.5,reset=first").unwrap();
        assert_eq!(s.rates, vec![(Fault::Reset, Rate::First)]);
        assert!(FaultSpec::parse("kubedown=prod-eu:60s")
            .unwrap()
            .rates
            .is_empty());
        assert!(!FaultSpec::parse("kubedown=prod-eu:60s").unwrap().is_none());
        assert!(FaultSpec::parse("reset=0").unwrap().is_none());
    }

    #[test]
    fn parses_kube_prefixed_kinds_apart_from_cloud_ones() {
        let s = FaultSpec::parse("kube:error500=first,throttle=0.2,kube:reset=0.1,retry_after=1")
            .unwrap();
        assert_eq!(s.kube_rate(Fault::Error500), Rate::First);
        assert_eq!(s.kube_rate(Fault::Reset), Rate::Random(0.1));
        assert_eq!(s.kube_rate(Fault::Throttle), Rate::Random(0.0));
        assert_eq!(s.rate(Fault::Throttle), Rate::Random(0.2));
        assert_eq!(s.rate(Fault::Error500), Rate::Random(0.0));
        assert_eq!(s.retry_after, Some(1));
        assert_eq!(FaultSpec::parse(&s.to_string()).unwrap(), s);
        let k = FaultSpec::parse("kube:garbage=first").unwrap();
        assert!(k.rates.is_empty() && !k.is_none());
        assert!(FaultSpec::parse("kube:garbage=0").unwrap().is_none());
        let e = FaultSpec::parse("kube:hang=c").unwrap_err();
        assert!(e.contains("kube:hang=c") && e.contains("not `hang`"), "{e}");
        assert!(FaultSpec::parse("kube:reset=2").is_err());
    }

    #[test]
    fn rejects_bad_items_naming_them() {
        for (spec, needle) in [
            ("throttle=2", "throttle=2"),
            ("latency=20", "latency=20"),
            ("fail=c/ng", "fail=c/ng"),
            ("fail=c/ng:Nope", "Nope"),
            ("bogus=1", "bogus"),
            ("seed=x", "seed=x"),
            ("hang=", "hang="),
            ("throttle", "throttle"),
            ("reset=second", "reset=second"),
            ("stall=1.5", "stall=1.5"),
            ("retry_after=-1", "retry_after=-1"),
            ("retry_after=1.5", "retry_after=1.5"),
            ("stall_for=3", "stall_for=3"),
            ("kubedown=prod-eu", "CLUSTER:DURATION"),
            ("kubedown=prod-eu:0s", "above 0"),
            ("kubedown=:5s", "cluster name"),
        ] {
            let e = FaultSpec::parse(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains("accepted items"), "{e}");
        }
    }
}
