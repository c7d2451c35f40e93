//! The hosts' package managers as the kubeadm upgrade documentation uses them, as pure
//! functions from facts and versions to argument lists, and from command output to facts.
//!
//! pkgs.k8s.io keeps one repository per minor (`/core:/stable:/v1.31/deb/`), so every hop
//! switches the repository first. apt holds the packages; dnf repositories exclude them,
//! and DNF5 spells the override `--setopt=disable_excludes=kubernetes` where DNF4 takes
//! `--disableexcludes=kubernetes`.

use kup_engine::version::{Minor, Version};

pub const APT_REPO: &str = "/etc/apt/sources.list.d/kubernetes.list";
pub const DNF_REPO: &str = "/etc/yum.repos.d/kubernetes.repo";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pm {
    Apt,
    Dnf,
    Dnf5,
}

impl Pm {
    /// From `/etc/os-release` (`ID`, `ID_LIKE`).
    pub fn from_os_release(text: &str) -> Option<Pm> {
        let mut ids = Vec::new();
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix("ID=")
                .or_else(|| line.strip_prefix("ID_LIKE="))
            {
                ids.extend(
                    v.trim_matches('"')
                        .split_whitespace()
                        .map(str::to_lowercase),
                );
            }
        }
        if ids.iter().any(|i| i == "debian" || i == "ubuntu") {
            Some(Pm::Apt)
        } else if ids
            .iter()
            .any(|i| ["fedora", "rhel", "centos", "rocky", "almalinux"].contains(&i.as_str()))
        {
            Some(Pm::Dnf)
        } else {
            None
        }
    }

    pub fn repo_file(self) -> &'static str {
        match self {
            Pm::Apt => APT_REPO,
            Pm::Dnf | Pm::Dnf5 => DNF_REPO,
        }
    }

    fn disable_excludes(self) -> Option<&'static str> {
        match self {
            Pm::Apt => None,
            Pm::Dnf => Some("--disableexcludes=kubernetes"),
            Pm::Dnf5 => Some("--setopt=disable_excludes=kubernetes"),
        }
    }

    /// Refresh the package lists after the repository changed.
    pub fn refresh(self) -> Vec<String> {
        match self {
            Pm::Apt => argv(&["apt-get", "update"]),
            Pm::Dnf | Pm::Dnf5 => argv(&["dnf", "makecache"]),
        }
    }

    /// List every version of `pkg` the repository offers.
    pub fn list(self, pkg: &str) -> Vec<String> {
        match self {
            Pm::Apt => argv(&["apt-cache", "madison", pkg]),
            _ => {
                let mut a = argv(&["dnf", "list", "--showduplicates", pkg]);
                a.extend(self.disable_excludes().map(String::from));
                a
            }
        }
    }

    /// The commands that install `pkgs` (name, package version) and keep them from moving
    /// on their own.
    pub fn install(self, pkgs: &[(&str, &str)]) -> Vec<Vec<String>> {
        let names: Vec<&str> = pkgs.iter().map(|(n, _)| *n).collect();
        match self {
            Pm::Apt => {
                let mut unhold = argv(&["apt-mark", "unhold"]);
                unhold.extend(names.iter().map(|n| n.to_string()));
                let mut install = argv(&["apt-get", "install", "-y"]);
                install.extend(pkgs.iter().map(|(n, v)| format!("{n}={v}")));
                let mut hold = argv(&["apt-mark", "hold"]);
                hold.extend(names.iter().map(|n| n.to_string()));
                vec![unhold, install, hold]
            }
            _ => {
                let mut install = argv(&["dnf", "install", "-y"]);
                install.extend(pkgs.iter().map(|(n, v)| format!("{n}-{v}")));
                install.extend(self.disable_excludes().map(String::from));
                vec![install]
            }
        }
    }

    /// `(version, package version)` pairs from the list command's output.
    pub fn parse_list(self, pkg: &str, out: &str) -> Vec<(Version, String)> {
        let mut found = Vec::new();
        for line in out.lines() {
            let pkg_version = match self {
                // ` kubeadm | 1.31.4-1.1 | https://pkgs.k8s.io/... Packages`
                Pm::Apt => {
                    let cols: Vec<&str> = line.split('|').map(str::trim).collect();
                    if cols.len() < 2 || cols[0] != pkg {
                        continue;
                    }
                    cols[1]
                }
                // `kubeadm.x86_64    1.31.4-150500.1.1    kubernetes`
                _ => {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    if cols.len() < 2 || cols[0].split('.').next() != Some(pkg) {
                        continue;
                    }
                    cols[1]
                }
            };
            if !safe_version(pkg_version) {
                continue;
            }
            let upstream = pkg_version.split('-').next().unwrap_or("");
            if let Ok(v) = upstream.parse::<Version>() {
                if v.patch.is_some() {
                    found.push((v, pkg_version.to_string()));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

/// A package version as a package manager prints it: nothing a shell could mistake.
pub fn safe_version(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+~:_".contains(c))
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The minor a pkgs.k8s.io repository file points at (`/core:/stable:/v1.30/`).
pub fn repo_minor(text: &str) -> Option<Minor> {
    let i = text.find("pkgs.k8s.io/core:/stable:/v")?;
    let rest = &text[i + "pkgs.k8s.io/core:/stable:/v".len()..];
    let end = rest.find('/')?;
    rest[..end].parse().ok()
}

/// The repository file pointed at `to` instead of its current minor.
pub fn switch_repo(text: &str, to: Minor) -> Option<String> {
    let from = repo_minor(text)?;
    Some(text.replace(
        &format!("pkgs.k8s.io/core:/stable:/v{from}/"),
        &format!("pkgs.k8s.io/core:/stable:/v{to}/"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_and_repositories() {
        assert_eq!(
            Pm::from_os_release("NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"),
            Some(Pm::Apt)
        );
        assert_eq!(
            Pm::from_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Pm::Dnf)
        );
        assert_eq!(Pm::from_os_release("ID=alpine\n"), None);
        let apt = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n";
        assert_eq!(repo_minor(apt), Some(Minor::new(1, 29)));
        assert!(switch_repo(apt, Minor::new(1, 30))
            .unwrap()
            .contains("/core:/stable:/v1.30/deb/"));
        assert_eq!(
            repo_minor("deb http://apt.kubernetes.io/ kubernetes-xenial main"),
            None
        );
    }

    #[test]
    fn listings_and_installs() {
        let madison = " kubeadm | 1.30.9-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n kubeadm | 1.30.5-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n kubeadm | 1.30.6-1.1;rm -rf / | x\n";
        let l = Pm::Apt.parse_list("kubeadm", madison);
        assert_eq!(
            l.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
            ["1.30.5-1.1", "1.30.9-1.1"]
        );
        let dnf = "Available Packages\nkubeadm.x86_64     1.30.9-150500.1.1     kubernetes\n";
        assert_eq!(Pm::Dnf.parse_list("kubeadm", dnf)[0].1, "1.30.9-150500.1.1");
        assert_eq!(
            Pm::Apt.install(&[("kubeadm", "1.30.9-1.1")]),
            vec![
                vec!["apt-mark", "unhold", "kubeadm"],
                vec!["apt-get", "install", "-y", "kubeadm=1.30.9-1.1"],
                vec!["apt-mark", "hold", "kubeadm"],
            ]
        );
        assert_eq!(
            Pm::Dnf5.install(&[("kubelet", "1.30.9-150500.1.1")])[0]
                .last()
                .unwrap(),
            "--setopt=disable_excludes=kubernetes"
        );
        assert_eq!(
            Pm::Dnf.list("kubeadm").last().unwrap(),
            "--disableexcludes=kubernetes"
        );
    }
}
