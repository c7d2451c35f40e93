//! The built-in catalog: every version fact the simulated EKS serves, in one place.
//!
//! Kubernetes release / end-of-support dates come from
//! `../shared/reference/kubernetes/releases.json` (EKS columns, 1.24–1.34). The 1.23 row is not
//! in that file; its dates are the ones the EKS user guide published for 1.23
//! (release 2022-08-11, end of standard support 2023-10-11, end of extended support
//! 2024-10-11). Patch versions, platform versions, AMI release versions and add-on versions
//! are realistic in shape and order but are simulation data, not a copy of AWS's live lists.

use time::Date;
use time::Month;

/// One Kubernetes minor that the simulated EKS knows about.
#[derive(Debug, Clone, Copy)]
pub struct K8sVersion {
    /// The minor number: `28` for Kubernetes 1.28.
    pub minor: u32,
    /// `kubernetesPatchVersion` served by DescribeClusterVersions.
    pub patch_version: &'static str,
    /// EKS release date, end of standard support, end of extended support (YYYY, M, D).
    pub release: (i32, u8, u8),
    pub end_standard: (i32, u8, u8),
    pub end_extended: (i32, u8, u8),
    /// Number of platform versions published for this minor: `eks.1` … `eks.N`.
    pub platform_versions: u32,
    /// Managed-node-group AMI release versions, oldest first; the last one is the default.
    pub ami_releases: &'static [&'static str],
}

pub const VERSIONS: &[K8sVersion] = &[
    K8sVersion {
        minor: 23,
        patch_version: "1.23.17",
        release: (2022, 8, 11),
        end_standard: (2023, 10, 11),
        end_extended: (2024, 10, 11),
        platform_versions: 16,
        ami_releases: &["1.23.17-20240315", "1.23.17-20240817"],
    },
    K8sVersion {
        minor: 24,
        patch_version: "1.24.17",
        release: (2022, 11, 15),
        end_standard: (2024, 1, 31),
        end_extended: (2025, 1, 31),
        platform_versions: 14,
        ami_releases: &["1.24.17-20240315", "1.24.17-20241011"],
    },
    K8sVersion {
        minor: 25,
        patch_version: "1.25.16",
        release: (2023, 2, 22),
        end_standard: (2024, 5, 1),
        end_extended: (2025, 5, 1),
        platform_versions: 13,
        ami_releases: &["1.25.16-20240315", "1.25.16-20241225"],
    },
    K8sVersion {
        minor: 26,
        patch_version: "1.26.15",
        release: (2023, 4, 11),
        end_standard: (2024, 6, 11),
        end_extended: (2025, 6, 11),
        platform_versions: 13,
        ami_releases: &["1.26.12-20240213", "1.26.15-20240514", "1.26.15-20250115"],
    },
    K8sVersion {
        minor: 27,
        patch_version: "1.27.16",
        release: (2023, 5, 24),
        end_standard: (2024, 7, 24),
        end_extended: (2025, 7, 24),
        platform_versions: 12,
        ami_releases: &["1.27.10-20240213", "1.27.12-20240514", "1.27.16-20250212"],
    },
    K8sVersion {
        minor: 28,
        patch_version: "1.28.15",
        release: (2023, 9, 26),
        end_standard: (2024, 11, 26),
        end_extended: (2025, 11, 26),
        platform_versions: 12,
        ami_releases: &["1.28.5-20240307", "1.28.13-20241024", "1.28.15-20250407"],
    },
    K8sVersion {
        minor: 29,
        patch_version: "1.29.13",
        release: (2024, 1, 23),
        end_standard: (2025, 3, 23),
        end_extended: (2026, 3, 23),
        platform_versions: 10,
        ami_releases: &["1.29.0-20240129", "1.29.3-20240531", "1.29.13-20250403"],
    },
    K8sVersion {
        minor: 30,
        patch_version: "1.30.11",
        release: (2024, 5, 23),
        end_standard: (2025, 7, 23),
        end_extended: (2026, 7, 23),
        platform_versions: 9,
        ami_releases: &["1.30.0-20240529", "1.30.4-20241024", "1.30.11-20250403"],
    },
    K8sVersion {
        minor: 31,
        patch_version: "1.31.7",
        release: (2024, 9, 26),
        end_standard: (2025, 11, 26),
        end_extended: (2026, 11, 26),
        platform_versions: 7,
        ami_releases: &["1.31.0-20240924", "1.31.4-20250123", "1.31.7-20250505"],
    },
    K8sVersion {
        minor: 32,
        patch_version: "1.32.3",
        release: (2025, 1, 23),
        end_standard: (2026, 3, 23),
        end_extended: (2027, 3, 23),
        platform_versions: 5,
        ami_releases: &["1.32.0-20250203", "1.32.3-20250519"],
    },
    K8sVersion {
        minor: 33,
        patch_version: "1.33.4",
        release: (2025, 5, 29),
        end_standard: (2026, 7, 29),
        end_extended: (2027, 7, 29),
        platform_versions: 3,
        ami_releases: &["1.33.0-20250620", "1.33.4-20250904"],
    },
    K8sVersion {
        minor: 34,
        patch_version: "1.34.1",
        release: (2025, 10, 2),
        end_standard: (2026, 12, 2),
        end_extended: (2027, 12, 2),
        platform_versions: 2,
        ami_releases: &["1.34.0-20251003", "1.34.1-20251009"],
    },
];

/// Default "today" of the catalog: decides which versions are in standard / extended support or
/// unsupported. Fixed so runs are reproducible; `settings { catalog_date = "…" }` overrides it.
pub const DEFAULT_CATALOG_DATE: (i32, u8, u8) = (2025, 10, 15);

/// Support status of a version on a given catalog date (model enum `VersionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportStatus {
    Standard,
    Extended,
    Unsupported,
}

impl SupportStatus {
    /// `VersionStatus` enum value.
    pub fn version_status(self) -> &'static str {
        match self {
            SupportStatus::Standard => "STANDARD_SUPPORT",
            SupportStatus::Extended => "EXTENDED_SUPPORT",
            SupportStatus::Unsupported => "UNSUPPORTED",
        }
    }
    /// Deprecated `ClusterVersionStatus` enum value (the `status` member).
    pub fn cluster_version_status(self) -> &'static str {
        match self {
            SupportStatus::Standard => "standard-support",
            SupportStatus::Extended => "extended-support",
            SupportStatus::Unsupported => "unsupported",
        }
    }
}

pub fn date(d: (i32, u8, u8)) -> Date {
    Date::from_calendar_date(d.0, Month::try_from(d.1).expect("month"), d.2).expect("valid date")
}

impl K8sVersion {
    pub fn name(&self) -> String {
        format!("1.{}", self.minor)
    }
    pub fn status_on(&self, today: Date) -> SupportStatus {
        if today < date(self.end_standard) {
            SupportStatus::Standard
        } else if today < date(self.end_extended) {
            SupportStatus::Extended
        } else {
            SupportStatus::Unsupported
        }
    }
    /// Released on or before `today`.
    pub fn released_by(&self, today: Date) -> bool {
        date(self.release) <= today
    }
    pub fn latest_platform_version(&self) -> String {
        format!("eks.{}", self.platform_versions)
    }
    pub fn has_platform_version(&self, pv: &str) -> bool {
        pv.strip_prefix("eks.")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1 && n <= self.platform_versions)
    }
    pub fn latest_ami_release(&self) -> &'static str {
        self.ami_releases
            .last()
            .expect("every version has an AMI release")
    }
}

/// Look up a minor.
pub fn version(minor: u32) -> Option<&'static K8sVersion> {
    VERSIONS.iter().find(|v| v.minor == minor)
}

/// Parse a Kubernetes minor as EKS spells it: `"1.28"`. Returns the minor number.
pub fn parse_minor(s: &str) -> Option<u32> {
    let rest = s.strip_prefix("1.")?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || rest.len() > 3 {
        return None;
    }
    rest.parse().ok()
}

/// The newest version released by `today` (the `defaultVersion` of DescribeClusterVersions).
pub fn default_version(today: Date) -> &'static K8sVersion {
    VERSIONS
        .iter()
        .rev()
        .find(|v| v.released_by(today) && v.status_on(today) == SupportStatus::Standard)
        .unwrap_or(VERSIONS.last().expect("non-empty"))
}

/// One EKS add-on version with the minors it is compatible with.
#[derive(Debug, Clone, Copy)]
pub struct AddonVersion {
    pub version: &'static str,
    /// Inclusive range of compatible minors.
    pub min_minor: u32,
    pub max_minor: u32,
    /// Minors for which this is the `defaultVersion`.
    pub default_for: &'static [u32],
}

impl AddonVersion {
    pub fn compatible_with(&self, minor: u32) -> bool {
        (self.min_minor..=self.max_minor).contains(&minor)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AddonCatalog {
    pub name: &'static str,
    /// `type` member of AddonInfo.
    pub kind: &'static str,
    pub requires_iam_permissions: bool,
    /// Oldest first.
    pub versions: &'static [AddonVersion],
}

const fn av(
    version: &'static str,
    min_minor: u32,
    max_minor: u32,
    default_for: &'static [u32],
) -> AddonVersion {
    AddonVersion {
        version,
        min_minor,
        max_minor,
        default_for,
    }
}

pub const ADDONS: &[AddonCatalog] = &[
    AddonCatalog {
        name: "coredns",
        kind: "networking",
        requires_iam_permissions: false,
        versions: &[
            av("v1.8.7-eksbuild.10", 23, 25, &[23, 24]),
            av("v1.9.3-eksbuild.22", 24, 28, &[25, 26]),
            av("v1.10.1-eksbuild.7", 25, 29, &[27, 28]),
            av("v1.11.1-eksbuild.13", 28, 31, &[29]),
            av("v1.11.3-eksbuild.2", 29, 32, &[30, 31]),
            av("v1.11.4-eksbuild.14", 30, 33, &[32]),
            av("v1.12.1-eksbuild.2", 32, 34, &[33]),
            av("v1.12.3-eksbuild.1", 33, 34, &[34]),
        ],
    },
    AddonCatalog {
        name: "kube-proxy",
        kind: "networking",
        requires_iam_permissions: false,
        // kube-proxy tracks the control-plane minor exactly.
        versions: &[
            av("v1.23.8-eksbuild.2", 23, 23, &[23]),
            av("v1.23.16-eksbuild.2", 23, 23, &[]),
            av("v1.23.17-eksbuild.20", 23, 23, &[]),
            av("v1.24.7-eksbuild.2", 24, 24, &[24]),
            av("v1.24.10-eksbuild.2", 24, 24, &[]),
            av("v1.24.17-eksbuild.19", 24, 24, &[]),
            av("v1.25.6-eksbuild.1", 25, 25, &[25]),
            av("v1.25.14-eksbuild.2", 25, 25, &[]),
            av("v1.25.16-eksbuild.18", 25, 25, &[]),
            av("v1.26.2-eksbuild.1", 26, 26, &[26]),
            av("v1.26.9-eksbuild.2", 26, 26, &[]),
            av("v1.26.15-eksbuild.14", 26, 26, &[]),
            av("v1.27.1-eksbuild.1", 27, 27, &[27]),
            av("v1.27.6-eksbuild.2", 27, 27, &[]),
            av("v1.27.16-eksbuild.14", 27, 27, &[]),
            av("v1.28.1-eksbuild.1", 28, 28, &[28]),
            av("v1.28.4-eksbuild.1", 28, 28, &[]),
            av("v1.28.15-eksbuild.4", 28, 28, &[]),
            av("v1.29.0-eksbuild.1", 29, 29, &[29]),
            av("v1.29.3-eksbuild.2", 29, 29, &[]),
            av("v1.29.13-eksbuild.3", 29, 29, &[]),
            av("v1.30.0-eksbuild.3", 30, 30, &[30]),
            av("v1.30.6-eksbuild.2", 30, 30, &[]),
            av("v1.30.11-eksbuild.2", 30, 30, &[]),
            av("v1.31.0-eksbuild.5", 31, 31, &[31]),
            av("v1.31.3-eksbuild.2", 31, 31, &[]),
            av("v1.31.7-eksbuild.7", 31, 31, &[]),
            av("v1.32.0-eksbuild.2", 32, 32, &[32]),
            av("v1.32.3-eksbuild.7", 32, 32, &[]),
            av("v1.33.0-eksbuild.2", 33, 33, &[33]),
            av("v1.33.3-eksbuild.4", 33, 33, &[]),
            av("v1.34.0-eksbuild.2", 34, 34, &[34]),
            av("v1.34.1-eksbuild.2", 34, 34, &[]),
        ],
    },
    AddonCatalog {
        name: "vpc-cni",
        kind: "networking",
        requires_iam_permissions: true,
        versions: &[
            av("v1.12.6-eksbuild.2", 23, 27, &[23, 24, 25]),
            av("v1.15.1-eksbuild.1", 24, 29, &[26, 27]),
            av("v1.16.0-eksbuild.1", 25, 30, &[28]),
            av("v1.18.3-eksbuild.3", 26, 32, &[29, 30]),
            av("v1.19.2-eksbuild.1", 27, 34, &[31, 32]),
            av("v1.20.4-eksbuild.2", 28, 34, &[33, 34]),
        ],
    },
];

pub fn addon(name: &str) -> Option<&'static AddonCatalog> {
    ADDONS.iter().find(|a| a.name == name)
}

impl AddonCatalog {
    pub fn find(&self, version: &str) -> Option<&'static AddonVersion> {
        self.versions.iter().find(|v| v.version == version)
    }
    /// Versions compatible with `minor`, newest first.
    pub fn compatible(&self, minor: u32) -> Vec<&'static AddonVersion> {
        self.versions
            .iter()
            .rev()
            .filter(|v| v.compatible_with(minor))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// GKE
// ---------------------------------------------------------------------------------------------

/// GKE versions the simulated `container.googleapis.com` offers, newest first within each
/// minor (`1.M.P-gke.N`). Realistic in shape and order; simulation data, not Google's live list.
pub const GKE_VERSIONS: &[&str] = &[
    "1.33.2-gke.1111000",
    "1.33.1-gke.1386000",
    "1.32.4-gke.1415000",
    "1.32.2-gke.1182003",
    "1.31.9-gke.1044001",
    "1.31.6-gke.1020000",
    "1.31.1-gke.1678000",
    "1.30.12-gke.1086000",
    "1.30.9-gke.1127000",
    "1.30.5-gke.1014001",
    "1.29.15-gke.1218000",
    "1.29.12-gke.1120000",
    "1.29.8-gke.1031000",
    "1.28.15-gke.2169000",
    "1.28.15-gke.1342000",
];

/// `defaultClusterVersion` of serverConfig (and the `-` alias for masters).
pub const GKE_DEFAULT_VERSION: &str = "1.31.9-gke.1044001";

/// Release channels: (channel, inclusive minor range offered, default version).
pub const GKE_CHANNELS: &[(&str, (u32, u32), &str)] = &[
    ("RAPID", (32, 33), "1.33.2-gke.1111000"),
    ("REGULAR", (30, 32), "1.31.9-gke.1044001"),
    ("STABLE", (29, 31), "1.30.12-gke.1086000"),
    ("EXTENDED", (28, 31), "1.30.12-gke.1086000"),
];

/// Minor of a GKE version string (`1.29.8-gke.1031000` → 29; also `1.29`, `1.29.8`).
pub fn gke_minor(v: &str) -> Option<u32> {
    let mut it = v.split(['.', '-']);
    (it.next()? == "1").then_some(())?;
    it.next()?.parse().ok()
}

/// Versions offered on `channel` (all versions for `UNSPECIFIED`), newest first.
pub fn gke_channel_versions(channel: &str) -> Vec<&'static str> {
    match GKE_CHANNELS.iter().find(|(c, ..)| *c == channel) {
        Some((_, (lo, hi), _)) => GKE_VERSIONS
            .iter()
            .copied()
            .filter(|v| gke_minor(v).is_some_and(|m| m >= *lo && m <= *hi))
            .collect(),
        None => GKE_VERSIONS.to_vec(),
    }
}

/// Resolve a GKE version alias: `latest`, `1.X`, `1.X.Y`, `1.X.Y-gke.N`; `-` is `dash`
/// (the default version for masters, the master's version for nodes).
pub fn gke_resolve(alias: &str, dash: &str) -> Option<String> {
    let a = alias.trim();
    if a == "-" || a.is_empty() {
        return Some(dash.to_string());
    }
    if a == "latest" {
        return Some(GKE_VERSIONS[0].to_string());
    }
    if GKE_VERSIONS.contains(&a) {
        return Some(a.to_string());
    }
    let prefix = format!("{a}.");
    let prefix2 = format!("{a}-");
    GKE_VERSIONS
        .iter()
        .find(|v| v.starts_with(&prefix) || v.starts_with(&prefix2))
        .map(|v| v.to_string())
}

/// Order of two GKE versions (by minor, patch, gke.N).
pub fn gke_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .filter_map(|p| p.trim_start_matches("gke").parse().ok())
            .collect()
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_contiguous_and_sane() {
        for w in VERSIONS.windows(2) {
            assert_eq!(w[0].minor + 1, w[1].minor);
        }
        assert_eq!(VERSIONS.first().unwrap().minor, 23);
        assert_eq!(VERSIONS.last().unwrap().minor, 34);
        for v in VERSIONS {
            assert!(date(v.release) < date(v.end_standard));
            assert!(date(v.end_standard) < date(v.end_extended));
            assert!(v.patch_version.starts_with(&format!("1.{}.", v.minor)));
            for r in v.ami_releases {
                assert!(r.starts_with(&format!("1.{}.", v.minor)), "{r}");
            }
        }
        assert_eq!(version(28).unwrap().patch_version, "1.28.15");
        assert_eq!(version(31).unwrap().patch_version, "1.31.7");
    }

    #[test]
    fn every_minor_has_exactly_one_default_per_addon() {
        for a in ADDONS {
            for v in VERSIONS {
                let defaults = a
                    .versions
                    .iter()
                    .filter(|x| x.default_for.contains(&v.minor))
                    .count();
                assert_eq!(defaults, 1, "{} {}", a.name, v.minor);
                for x in a
                    .versions
                    .iter()
                    .filter(|x| x.default_for.contains(&v.minor))
                {
                    assert!(x.compatible_with(v.minor), "{} {}", a.name, x.version);
                }
            }
        }
    }

    #[test]
    fn kube_proxy_tracks_minor() {
        let kp = addon("kube-proxy").unwrap();
        for v in kp.versions {
            assert_eq!(v.min_minor, v.max_minor);
            assert!(v.version.starts_with(&format!("v1.{}.", v.min_minor)));
        }
        assert!(!kp.find("v1.28.4-eksbuild.1").unwrap().compatible_with(29));
    }

    #[test]
    fn status_by_date() {
        let today = date(DEFAULT_CATALOG_DATE);
        assert_eq!(
            version(28).unwrap().status_on(today),
            SupportStatus::Extended
        );
        assert_eq!(
            version(33).unwrap().status_on(today),
            SupportStatus::Standard
        );
        assert_eq!(
            version(26).unwrap().status_on(today),
            SupportStatus::Unsupported
        );
        assert_eq!(default_version(today).minor, 34);
    }

    #[test]
    fn parse_minor_forms() {
        assert_eq!(parse_minor("1.28"), Some(28));
        assert_eq!(parse_minor("1.28.3"), None);
        assert_eq!(parse_minor("2.1"), None);
        assert_eq!(parse_minor("1."), None);
    }
}
