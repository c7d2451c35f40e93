//! Commands on kubeadm hosts through the system's OpenSSH client, so the user's ssh
//! config (`Host` aliases, `ProxyJump`, ...), agent and known_hosts apply exactly as for
//! their own `ssh`. Host keys are always checked (`StrictHostKeyChecking=yes`,
//! `BatchMode=yes`): kup never trusts an unknown or changed key.
//!
//! Every remote command is an argument list; each argument is quoted for the remote shell
//! (`shlex`), so a host name, version or label can never become shell syntax.

use std::process::Stdio;
use std::time::Duration;

use kup_engine::model::SshSpec;
use tokio::io::AsyncWriteExt;

use crate::kube::expand_tilde;
use crate::{ErrorKind, ProviderError};

/// What a remote command printed and returned.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command line the remote shell received.
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Standard output and error, the last `lines` lines, for journals and errors.
    pub fn trimmed(&self, lines: usize) -> String {
        let all: Vec<&str> = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let skip = all.len().saturating_sub(lines);
        all[skip..].join("\n")
    }
}

#[derive(Clone, Debug)]
pub struct Ssh {
    spec: SshSpec,
    timeout: Duration,
}

impl Ssh {
    pub fn new(spec: SshSpec) -> Ssh {
        Ssh {
            spec,
            timeout: Duration::from_secs(30 * 60),
        }
    }

    /// The command line the remote shell gets for `argv` (through `sudo -n` when `sudo`).
    pub fn command_line(&self, argv: &[String], sudo: bool) -> Result<String, ProviderError> {
        let mut parts: Vec<&str> = Vec::new();
        if sudo && self.spec.sudo {
            parts.extend(["sudo", "-n"]);
        }
        parts.extend(argv.iter().map(String::as_str));
        shlex::try_join(parts).map_err(|e| {
            ProviderError::new(
                ErrorKind::Invalid,
                format!("cannot quote {argv:?} for the remote shell: {e}"),
            )
        })
    }

    fn ssh_args(&self, host: &str) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "ConnectTimeout=20".into(),
        ];
        if let Some(c) = &self.spec.config {
            a.push("-F".into());
            a.push(expand_tilde(c).display().to_string());
        }
        if let Some(k) = &self.spec.known_hosts {
            a.push("-o".into());
            a.push(format!("UserKnownHostsFile={}", expand_tilde(k).display()));
        }
        if let Some(p) = self.spec.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        if let Some(k) = &self.spec.private_key {
            a.push("-i".into());
            a.push(expand_tilde(k).display().to_string());
            a.push("-o".into());
            a.push("IdentitiesOnly=yes".into());
        }
        if let Some(u) = &self.spec.user {
            a.push("-l".into());
            a.push(u.clone());
        }
        // The host cannot be read as an option after `--`.
        a.push("--".into());
        a.push(host.to_string());
        a
    }

    /// Run `argv` on `host`, feeding `stdin`. A non-zero exit is returned as `Ok` (the
    /// caller decides); failing to reach the host is an error that says why.
    pub async fn run(
        &self,
        host: &str,
        argv: &[String],
        sudo: bool,
        stdin: Option<&str>,
    ) -> Result<Output, ProviderError> {
        kup_engine::config::check_host(host).map_err(|why| {
            ProviderError::new(ErrorKind::Invalid, format!("host {host:?}: {why}"))
        })?;
        let command = self.command_line(argv, sudo)?;
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.ssh_args(host))
            .arg(&command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("cannot run the ssh client (is OpenSSH installed?): {e}"),
            )
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await.map_err(|e| {
                ProviderError::new(ErrorKind::Transient, format!("{host}: writing to ssh: {e}"))
            })?;
            drop(pipe);
        }
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                ProviderError::new(
                    ErrorKind::Transient,
                    format!(
                        "{host}: `{command}` did not finish within {:?}",
                        self.timeout
                    ),
                )
            })?
            .map_err(|e| ProviderError::new(ErrorKind::Transient, format!("{host}: ssh: {e}")))?;
        let output = Output {
            command,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // 255 is ssh's own failure (connection, authentication, host key).
        if output.code == 255 {
            return Err(ssh_failure(host, &output.stderr));
        }
        Ok(output)
    }
}

/// Why ssh could not run a command on `host`, in words a platform engineer can act on.
pub fn ssh_failure(host: &str, stderr: &str) -> ProviderError {
    let said = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("@@@"))
        .collect::<Vec<_>>()
        .join(" ");
    let (kind, what) = if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("Host key verification failed")
    {
        (
            ErrorKind::Auth,
            format!(
                "the host key of {host} is not the one in known_hosts (or is missing there); kup never trusts an unknown or changed key: check the host, then update known_hosts (`ssh-keygen -R {host}` and connect once by hand, or set ssh {{ known_hosts = \"…\" }})"
            ),
        )
    } else if stderr.contains("Permission denied") {
        (
            ErrorKind::Auth,
            format!("{host} refused the SSH login; check ssh {{ user, private_key }} and that the key is in the host's authorized_keys (or loaded in ssh-agent)"),
        )
    } else {
        (
            ErrorKind::Transient,
            format!("cannot reach {host} over SSH"),
        )
    };
    ProviderError::new(kind, format!("{what} (ssh said: {said})")).with_code("SshError")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_arguments_stay_arguments() {
        let ssh = Ssh::new(SshSpec::default());
        let line = ssh
            .command_line(
                &[
                    "kubeadm".into(),
                    "upgrade".into(),
                    "apply".into(),
                    "v1.30.9; rm -rf / $(reboot) `id` 'x'".into(),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            shlex::split(&line).unwrap(),
            [
                "sudo",
                "-n",
                "kubeadm",
                "upgrade",
                "apply",
                "v1.30.9; rm -rf / $(reboot) `id` 'x'"
            ]
        );
        assert!(Ssh::new(SshSpec::default())
            .ssh_args("cp1.lab")
            .ends_with(&["--".to_string(), "cp1.lab".to_string()]));
    }

    #[test]
    fn host_key_problems_are_named() {
        let e = ssh_failure("w1.lab", "Host key verification failed.\r\n");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(
            e.message.contains("not the one in known_hosts"),
            "{}",
            e.message
        );
        let e = ssh_failure(
            "w1.lab",
            "ssh: connect to host 127.0.0.9 port 22: Connection refused",
        );
        assert_eq!(e.kind, ErrorKind::Transient);
    }
}
