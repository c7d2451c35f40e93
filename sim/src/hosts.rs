//! Simulated hosts of a kubeadm cluster, reachable with the real OpenSSH client.
//!
//! [`Hosts::start`] runs one real `sshd` per node on `127.0.0.N` (N from 2, a free port
//! each). A session's `PATH` starts with shell-script stand-ins for `kubeadm`, `kubelet`,
//! `kubectl`, `apt-get`, `apt-mark`, `apt-cache`, `dnf`, `systemctl`, `sudo`, `cat`, `tee`,
//! `test`, `sed`, `hostname` and `killall` (embedded from `sim/hosts/`). They record every
//! call in the host's `calls.log`, keep package state in a per-host fake root, and move the
//! simulated cluster through the simulator's `/_sim/kubeadm/…` admin endpoints. See the crate
//! README ("kubeadm clusters and host stand-ins") for the contract.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use kup_sim::hosts::{HostOs, HostSpec, Hosts};
//! let hosts = Hosts::start(
//!     std::path::Path::new("/tmp/lab-hosts"),
//!     "lab",
//!     "http://127.0.0.1:8080/_sim",
//!     "1.29.8",
//!     &[HostSpec::new("cp1", HostOs::Debian), HostSpec::new("w1", HostOs::Fedora)],
//! )?;
//! let out = hosts.ssh("cp1", "sudo -n kubeadm version -o short").output()?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "v1.29.8\n");
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The stand-in scripts, installed into `<dir>/bin`.
const SCRIPTS: &[(&str, &str)] = &[
    ("kubeadm", include_str!("../hosts/bin/kubeadm")),
    ("kubelet", include_str!("../hosts/bin/kubelet")),
    ("kubectl", include_str!("../hosts/bin/kubectl")),
    ("apt-get", include_str!("../hosts/bin/apt-get")),
    ("apt-mark", include_str!("../hosts/bin/apt-mark")),
    ("apt-cache", include_str!("../hosts/bin/apt-cache")),
    ("dnf", include_str!("../hosts/bin/dnf")),
    ("systemctl", include_str!("../hosts/bin/systemctl")),
    ("sudo", include_str!("../hosts/bin/sudo")),
    ("cat", include_str!("../hosts/bin/cat")),
    ("tee", include_str!("../hosts/bin/tee")),
    ("test", include_str!("../hosts/bin/test")),
    ("sed", include_str!("../hosts/bin/sed")),
    ("hostname", include_str!("../hosts/bin/hostname")),
    ("killall", include_str!("../hosts/bin/killall")),
];

/// The helpers every stand-in sources, installed as `<dir>/lib/kup-host.sh`.
const LIB: &str = include_str!("../hosts/lib/kup-host.sh");

/// Names of the stand-in commands (the files of `<dir>/bin`).
pub fn stand_ins() -> Vec<&'static str> {
    SCRIPTS.iter().map(|(n, _)| *n).collect()
}

/// The distribution a simulated host runs: decides `/etc/os-release`, the package manager the
/// stand-ins accept and the repository file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOs {
    /// Debian 12: apt-get / apt-mark / apt-cache, `/etc/apt/sources.list.d/kubernetes.list`,
    /// packages held.
    Debian,
    /// Fedora 40 with dnf4: `/etc/yum.repos.d/kubernetes.repo` excluding the packages.
    Fedora,
    /// Fedora 41 with dnf5 (`/etc/dnf5` exists): only `--setopt=disable_excludes=…` lifts the
    /// repository's exclusion.
    Fedora5,
}

/// One host to start: its node name (= host name) and distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub node: String,
    pub os: HostOs,
}

impl HostSpec {
    pub fn new(node: impl Into<String>, os: HostOs) -> Self {
        HostSpec {
            node: node.into(),
            os,
        }
    }
}

struct Host {
    node: String,
    os: HostOs,
    control_plane: bool,
    addr: SocketAddr,
    /// `<dir>/hosts/<node>`.
    home: PathBuf,
    /// `<dir>/hosts/<node>/root`.
    root: PathBuf,
    child: Option<Child>,
}

/// Running simulated hosts. Dropping it kills their sshd processes.
pub struct Hosts {
    dir: PathBuf,
    cluster: String,
    ssh_config: PathBuf,
    known_hosts: PathBuf,
    client_key: PathBuf,
    hosts: Vec<Host>,
}

/// `sshd` as an absolute path (sshd refuses to run from a relative one).
fn find_sshd() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/sbin/sshd");
    if fixed.is_file() {
        return Some(fixed);
    }
    find_on_path("sshd")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .filter(|p| p.is_absolute())
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_mode(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// A plain HTTP/1.0 GET against the simulator's admin API: (status, body).
fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("the admin URL must start with http:// (got {url})"))?;
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let mut s = TcpStream::connect(hostport)
        .with_context(|| format!("connecting to the simulator at {hostport}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP response from {url}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("malformed HTTP status line from {url}: {head}"))?;
    Ok((status, body.to_string()))
}

fn current_user() -> String {
    if let Ok(u) = std::env::var("USER") {
        if !u.is_empty() {
            return u;
        }
    }
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

fn os_release(os: HostOs) -> &'static str {
    match os {
        HostOs::Debian => {
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
NAME=\"Debian GNU/Linux\"
VERSION_ID=\"12\"
VERSION=\"12 (bookworm)\"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL=\"https://www.debian.org/\"
SUPPORT_URL=\"https://www.debian.org/support\"
BUG_REPORT_URL=\"https://bugs.debian.org/\"
"
        }
        HostOs::Fedora => {
            "NAME=\"Fedora Linux\"
VERSION=\"40 (Server Edition)\"
ID=fedora
VERSION_ID=40
PLATFORM_ID=\"platform:f40\"
PRETTY_NAME=\"Fedora Linux 40 (Server Edition)\"
VARIANT=\"Server Edition\"
VARIANT_ID=server
"
        }
        HostOs::Fedora5 => {
            "NAME=\"Fedora Linux\"
VERSION=\"41 (Server Edition)\"
ID=fedora
VERSION_ID=41
PLATFORM_ID=\"platform:f41\"
PRETTY_NAME=\"Fedora Linux 41 (Server Edition)\"
VARIANT=\"Server Edition\"
VARIANT_ID=server
"
        }
    }
}

/// `deb [signed-by=…] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /` — the apt source line.
pub fn apt_source(minor: &str) -> String {
    format!("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n")
}

/// The `kubernetes.repo` yum/dnf repository file of `minor`.
pub fn yum_repo(minor: &str) -> String {
    format!(
        "[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
"
    )
}

fn manifest(comp: &str, version: &str) -> String {
    let image = if comp == "etcd" {
        format!(
            "registry.k8s.io/etcd:{}",
            crate::kubeadm::parse_version(version)
                .map(crate::kubeadm::etcd_version)
                .unwrap_or("3.5.12-0")
        )
    } else {
        format!("registry.k8s.io/{comp}:v{version}")
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {comp}
  namespace: kube-system
  labels:
    component: {comp}
    tier: control-plane
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: {comp}
    image: {image}
    command:
    - {comp}
"
    )
}

const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
";

impl Hosts {
    /// True when this machine can run simulated hosts: `sshd` (`/usr/sbin/sshd` or on `PATH`)
    /// and `ssh-keygen` exist.
    pub fn sshd_available() -> bool {
        find_sshd().is_some() && find_on_path("ssh-keygen").is_some()
    }

    /// Start one sshd per host on `127.0.0.N` (N = 2, 3, … in `hosts` order), each on a free
    /// port, under `dir` (created if missing; `dir/hosts` must not exist yet).
    ///
    /// Sets up ed25519 host keys, one client key (`<dir>/id_ed25519`), `<dir>/authorized_keys`,
    /// the stand-ins in `<dir>/bin` (+ `<dir>/lib/kup-host.sh`), and per host a fake root
    /// (`<dir>/hosts/<node>/root`: os-release, the package repository file at the minor of
    /// `version`, kubeadm/kubelet/kubectl `version` installed (and held on Debian), the
    /// repository cache, kubeconfigs of the simulated cluster in `/etc/kubernetes`, static-pod
    /// manifests on control-plane nodes). Writes `<dir>/ssh_config` (one `Host <node>.lab`
    /// alias per host) and `<dir>/known_hosts`, and returns once every sshd accepts
    /// connections. `admin_url` is the simulator's `Endpoints::admin`; the cluster and every
    /// node must exist there.
    ///
    /// Blocking, and it asks the simulator over HTTP: in a tokio test call it through
    /// `tokio::task::spawn_blocking` so the simulator keeps serving (likewise for `ssh`).
    pub fn start(
        dir: &Path,
        cluster: &str,
        admin_url: &str,
        version: &str,
        hosts: &[HostSpec],
    ) -> anyhow::Result<Hosts> {
        let Some(sshd) = find_sshd() else {
            bail!("sshd is not installed (looked for /usr/sbin/sshd and sshd on PATH)");
        };
        let Some(keygen) = find_on_path("ssh-keygen") else {
            bail!("ssh-keygen is not installed");
        };
        let Some(v) = crate::kubeadm::parse_version(version).filter(|_| !version.starts_with('v'))
        else {
            bail!("version {version:?} must be MAJOR.MINOR.PATCH (e.g. 1.29.8)");
        };
        let minor = crate::kubeadm::minor_of(v);
        if hosts.is_empty() {
            bail!("no hosts to start");
        }
        if hosts.len() > 250 {
            bail!("at most 250 hosts (127.0.0.2 … 127.0.0.251)");
        }
        if !crate::world::valid_name(cluster) {
            bail!("cluster name {cluster:?} is not valid");
        }
        for (i, h) in hosts.iter().enumerate() {
            if !crate::kubeadm::valid_node_name(&h.node) {
                bail!("host {:?}: node names must be DNS labels", h.node);
            }
            if hosts[..i].iter().any(|x| x.node == h.node) {
                bail!("host {:?} is listed twice", h.node);
            }
        }
        let admin_url = admin_url.trim_end_matches('/').to_string();
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()?.join(dir)
        };
        let bad = |p: &Path| {
            p.to_str()
                .is_none_or(|s| s.contains(['"', '\'', ' ', '\t', '\n', '\\', '%']))
        };
        if bad(&dir) {
            bail!(
                "{}: the hosts directory must be a plain path (no spaces, quotes, backslashes or %)",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if dir.join("hosts").exists() {
            bail!(
                "{} already holds simulated hosts; use a fresh directory",
                dir.display()
            );
        }
        // sshd's privilege-separation directory (needed when running as root).
        let _ = std::fs::create_dir_all("/run/sshd");

        // What the simulator knows: roles, the cluster's kubeconfig, the repository.
        let base = format!("{admin_url}/kubeadm/{cluster}");
        let (st, kubeconfig) = http_get(&format!("{base}/kubeconfig"))?;
        if st != 200 {
            bail!("the simulator at {admin_url} has no kubeadm cluster {cluster:?}: {kubeconfig}");
        }
        let (st, repo) = http_get(&format!("{base}/packages/{minor}"))?;
        let repo = if st == 200 { repo } else { String::new() };
        let mut roles = Vec::new();
        for h in hosts {
            let (st, role) = http_get(&format!("{base}/hosts/{}/role", h.node))?;
            if st != 200 {
                bail!("host {:?}: {}", h.node, role.trim());
            }
            roles.push(role.trim() == "control-plane");
        }

        // Stand-ins and client key.
        let bin = dir.join("bin");
        for (name, text) in SCRIPTS {
            write_mode(&bin.join(name), text, 0o755)?;
        }
        write(&dir.join("lib/kup-host.sh"), LIB)?;
        let client_key = dir.join("id_ed25519");
        let _ = std::fs::remove_file(&client_key);
        let _ = std::fs::remove_file(dir.join("id_ed25519.pub"));
        run(
            Command::new(&keygen)
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "kup-sim-client",
                    "-f",
                ])
                .arg(&client_key),
            "ssh-keygen (client key)",
        )?;
        let pubkey = std::fs::read_to_string(dir.join("id_ed25519.pub"))?;
        write(&dir.join("authorized_keys"), &pubkey)?;
        std::fs::set_permissions(&client_key, std::fs::Permissions::from_mode(0o600))?;

        let mut me = Hosts {
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            client_key,
            cluster: cluster.to_string(),
            dir: dir.clone(),
            hosts: Vec::new(),
        };
        let user = current_user();
        let mut extra_options: Option<Vec<&str>> = None;
        let mut known = String::new();
        for (i, (h, cp)) in hosts.iter().zip(roles).enumerate() {
            let home = dir.join("hosts").join(&h.node);
            let root = home.join("root");
            me.seed_root(&root, h, cp, version, &minor, &kubeconfig, &repo)?;
            let key = home.join("ssh_host_ed25519_key");
            run(
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", ""])
                    .arg("-C")
                    .arg(format!("kup-sim-host-{}", h.node))
                    .arg("-f")
                    .arg(&key),
                "ssh-keygen (host key)",
            )?;
            let ip = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            let mut attempt = 0;
            let (child, addr) = loop {
                attempt += 1;
                let port = TcpListener::bind((ip, 0))
                    .and_then(|l| l.local_addr())
                    .with_context(|| format!("finding a free port on {ip}"))?
                    .port();
                let addr = SocketAddr::new(ip.into(), port);
                let conf = home.join("sshd_config");
                let extra = match &extra_options {
                    Some(x) => x.clone(),
                    None => {
                        // Newer sshd penalises clients that disconnect before authenticating
                        // (as the readiness probe does): switch that off where it exists.
                        write(
                            &conf,
                            &me.sshd_config(
                                h,
                                &home,
                                &root,
                                addr,
                                &admin_url,
                                &["PerSourcePenalties no"],
                            ),
                        )?;
                        let ok = Command::new(&sshd)
                            .arg("-t")
                            .arg("-f")
                            .arg(&conf)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        let x = if ok {
                            vec!["PerSourcePenalties no"]
                        } else {
                            vec![]
                        };
                        extra_options = Some(x.clone());
                        x
                    }
                };
                write(
                    &conf,
                    &me.sshd_config(h, &home, &root, addr, &admin_url, &extra),
                )?;
                let log = std::fs::File::create(home.join("sshd.log"))?;
                let mut child = Command::new(&sshd)
                    .arg("-D")
                    .arg("-e")
                    .arg("-f")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", sshd.display()))?;
                match wait_ready(&mut child, addr, &home.join("sshd.log")) {
                    Ok(()) => break (child, addr),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        if attempt < 5 && format!("{e:#}").contains("Address already in use") {
                            continue;
                        }
                        return Err(e.context(format!("host {}: sshd did not start", h.node)));
                    }
                }
            };
            let host_pub = std::fs::read_to_string(home.join("ssh_host_ed25519_key.pub"))?;
            let mut parts = host_pub.split_whitespace();
            let (kt, kb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let _ = writeln!(known, "[{ip}]:{} {kt} {kb}", addr.port());
            me.hosts.push(Host {
                node: h.node.clone(),
                os: h.os,
                control_plane: cp,
                addr,
                home,
                root,
                child: Some(child),
            });
        }
        write(&me.known_hosts, &known)?;
        let mut cfg = String::from("# kup-sim simulated hosts (written by kup_sim::hosts)\n");
        for h in &me.hosts {
            let _ = write!(
                cfg,
                "
Host {alias}
  HostName {ip}
  Port {port}
  User {user}
  IdentityFile {key}
  IdentitiesOnly yes
  UserKnownHostsFile {known}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  PasswordAuthentication no
  ConnectTimeout 10
  LogLevel ERROR
  ControlMaster auto
  ControlPath {control}/cm-%C
  ControlPersist 20
",
                alias = me.alias(&h.node),
                ip = h.addr.ip(),
                port = h.addr.port(),
                key = me.client_key.display(),
                known = me.known_hosts.display(),
                control = dir.display(),
            );
        }
        write(&me.ssh_config, &cfg)?;
        Ok(me)
    }

    #[allow(clippy::too_many_arguments)]
    fn seed_root(
        &self,
        root: &Path,
        h: &HostSpec,
        cp: bool,
        version: &str,
        minor: &str,
        kubeconfig: &str,
        repo: &str,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(root.join("proc"))?;
        // No swap, as kubeadm hosts should have (the header line only, as Linux prints it).
        std::fs::write(
            root.join("proc/swaps"),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        )?;
        std::fs::create_dir_all(root.join("etc/kubernetes/pki"))?;
        std::fs::create_dir_all(root.join("etc/kubernetes/tmp"))?;
        write(&root.join("calls.log"), "")?;
        write(&root.join("etc/os-release"), os_release(h.os))?;
        write(&root.join("etc/hostname"), &format!("{}\n", h.node))?;
        match h.os {
            HostOs::Debian => {
                write(
                    &root.join("etc/apt/sources.list.d/kubernetes.list"),
                    &apt_source(minor),
                )?;
                write(
                    &root.join("etc/apt/keyrings/kubernetes-apt-keyring.gpg"),
                    "kup-sim: not a real key\n",
                )?;
            }
            HostOs::Fedora | HostOs::Fedora5 => {
                write(
                    &root.join("etc/yum.repos.d/kubernetes.repo"),
                    &yum_repo(minor),
                )?;
                if h.os == HostOs::Fedora5 {
                    write(&root.join("etc/dnf5"), "dnf5\n")?;
                }
            }
        }
        write(&root.join("etc/kubernetes/kubelet.conf"), kubeconfig)?;
        if cp {
            write(&root.join("etc/kubernetes/admin.conf"), kubeconfig)?;
            write(&root.join("etc/kubernetes/super-admin.conf"), kubeconfig)?;
            for comp in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "etcd",
            ] {
                write(
                    &root.join(format!("etc/kubernetes/manifests/{comp}.yaml")),
                    &manifest(comp, version),
                )?;
            }
        }
        write(&root.join("var/lib/kubelet/config.yaml"), KUBELET_CONFIG)?;
        let pkgs = root.join("var/lib/kup-pkgs");
        for p in ["kubeadm", "kubelet", "kubectl"] {
            write(&pkgs.join(p), &format!("{version}\n"))?;
            if h.os == HostOs::Debian {
                write(&pkgs.join(format!("{p}.hold")), "")?;
            }
        }
        write(&pkgs.join(".repo"), repo)?;
        write(&pkgs.join(".repo-minor"), &format!("{minor}\n"))?;
        let _ = self;
        Ok(())
    }

    fn sshd_config(
        &self,
        h: &HostSpec,
        home: &Path,
        root: &Path,
        addr: SocketAddr,
        admin_url: &str,
        extra: &[&str],
    ) -> String {
        let mut s = format!(
            "# kup-sim host {node} (written by kup_sim::hosts)
ListenAddress {addr}
HostKey {home}/ssh_host_ed25519_key
PidFile {home}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PermitUserEnvironment no
X11Forwarding no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 200:30:400
MaxSessions 100
LogLevel INFO
SetEnv \"SHLVL=1\" \"PATH={bin}:/usr/bin:/bin:/usr/sbin:/sbin\" \"KUP_HOST_ROOT={root}\" \"KUP_HOST_NAME={node}\" \"KUP_SIM_ADMIN={admin}\" \"KUP_CLUSTER={cluster}\" \"KUP_HOSTS_DIR={dir}\"
Subsystem sftp internal-sftp
",
            node = h.node,
            home = home.display(),
            dir = self.dir.display(),
            bin = self.dir.join("bin").display(),
            root = root.display(),
            admin = admin_url,
            cluster = self.cluster,
        );
        for e in extra {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    fn host(&self, node: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.node == node)
            .unwrap_or_else(|| panic!("no simulated host {node:?}"))
    }

    /// The directory the hosts live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/ssh_config`: pass it to `ssh -F` (or `scp -F`).
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    /// `<dir>/known_hosts`: every host's `[127.0.0.N]:PORT ssh-ed25519 …` line.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// `<dir>/id_ed25519`: the client key every host accepts.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The user the hosts accept (the user running the tests, usually `root`).
    pub fn user(&self) -> String {
        current_user()
    }

    /// The `ssh_config` alias of a node: `cp1.lab`.
    pub fn alias(&self, node: &str) -> String {
        format!("{node}.lab")
    }

    /// The address a node's sshd listens on (`127.0.0.N:PORT`).
    pub fn addr(&self, node: &str) -> SocketAddr {
        self.host(node).addr
    }

    /// Node names, in start order.
    pub fn nodes(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.node.clone()).collect()
    }

    /// The distribution of a host.
    pub fn os(&self, node: &str) -> HostOs {
        self.host(node).os
    }

    /// Whether the simulator lists the node as a control-plane node.
    pub fn is_control_plane(&self, node: &str) -> bool {
        self.host(node).control_plane
    }

    /// The host's fake root (`/etc`, `/var`, `/proc` of the stand-ins live under it).
    pub fn root(&self, node: &str) -> &Path {
        &self.host(node).root
    }

    /// The host's sshd log (`sshd -D -e` stderr).
    pub fn sshd_log(&self, node: &str) -> PathBuf {
        self.host(node).home.join("sshd.log")
    }

    /// Lines of the host's `calls.log` (one per stand-in invocation: the command name and its
    /// arguments separated by single spaces).
    pub fn calls(&self, node: &str) -> Vec<String> {
        std::fs::read_to_string(self.root(node).join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The installed version of a package on a host (`1.30.9`), if installed.
    pub fn installed(&self, node: &str, package: &str) -> Option<String> {
        std::fs::read_to_string(self.root(node).join("var/lib/kup-pkgs").join(package))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Whether a package is held (`apt-mark hold`) on a host.
    pub fn held(&self, node: &str, package: &str) -> bool {
        self.root(node)
            .join("var/lib/kup-pkgs")
            .join(format!("{package}.hold"))
            .exists()
    }

    /// Set the installed version of a package on a host (e.g. a worker whose kubelet lags).
    pub fn set_installed(&self, node: &str, package: &str, version: &str) -> std::io::Result<()> {
        std::fs::write(
            self.root(node).join("var/lib/kup-pkgs").join(package),
            format!("{version}\n"),
        )
    }

    /// Point the stand-ins at another simulator admin URL (e.g. after restarting the
    /// simulator on a new port): written to `<dir>/admin_url`, which overrides the
    /// `KUP_SIM_ADMIN` that sshd passes.
    pub fn set_admin_url(&self, admin_url: &str) -> std::io::Result<()> {
        std::fs::write(
            self.dir.join("admin_url"),
            format!("{}\n", admin_url.trim_end_matches('/')),
        )
    }

    /// `ssh -F <ssh_config> <node>.lab <remote_command>`, ready to run.
    pub fn ssh(&self, node: &str, remote_command: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(&self.ssh_config)
            .arg(self.alias(node))
            .arg(remote_command)
            .stdin(Stdio::null());
        c
    }

    /// Stop every sshd (also done on drop).
    pub fn stop(&mut self) {
        // Close the multiplexed client connections the ssh_config's ControlMaster opened,
        // so no client or session outlives the hosts.
        for h in &self.hosts {
            let _ = Command::new("ssh")
                .arg("-F")
                .arg(&self.ssh_config)
                .args(["-O", "exit", &self.alias(&h.node)])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for h in &mut self.hosts {
            if let Some(mut c) = h.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wait until sshd at `addr` sends its banner (or exits: the error carries its log).
fn wait_ready(child: &mut Child, addr: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("sshd exited ({st}): {}", text.trim());
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = [0u8; 8];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "sshd on {addr} did not accept connections within 15s: {}",
                text.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stand_in_is_posix_sh_and_logs_itself() {
        for (name, text) in SCRIPTS {
            assert!(text.starts_with("#!/bin/sh\n"), "{name}");
            assert!(
                text.contains(&format!("kup_log {name} \"$@\"")),
                "{name} must log its call"
            );
            assert!(!text.contains("eval "), "{name} must not eval");
        }
        assert!(!LIB.contains("eval "));
        assert!(stand_ins().contains(&"kubeadm"));
    }

    #[test]
    fn repo_files() {
        assert_eq!(
            apt_source("1.29"),
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n"
        );
        let r = yum_repo("1.30");
        assert!(r.contains("baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"));
        assert!(r.contains("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"));
    }
}
