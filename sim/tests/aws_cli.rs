//! The aws CLI (botocore) against the simulator. Skips, with a message, when `aws` is not on
//! PATH.

mod common;

use std::process::Command;

use common::{start, CLUSTER};

fn aws_available() -> bool {
    Command::new("aws")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn aws(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new("aws")
        .args(args)
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            "eu-west-1",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKID")
        .env("AWS_SECRET_ACCESS_KEY", "SECRET")
        .env("AWS_PAGER", "")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run aws")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_describe_update_and_errors() {
    if !aws_available() {
        println!("SKIPPED aws_cli_describe_update_and_errors: `aws` CLI not found on PATH");
        return;
    }
    let h = start(6000.0, "").await;
    let ep = h.sim.endpoints().eks;
    let ep2 = ep.clone();
    let out = tokio::task::spawn_blocking(move || {
        aws(&ep2, &["eks", "describe-cluster", "--name", CLUSTER])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["version"], "1.28");
    assert_eq!(v["cluster"]["status"], "ACTIVE");

    let ep2 = ep.clone();
    let out = tokio::task::spawn_blocking(move || {
        aws(
            &ep2,
            &[
                "eks",
                "update-cluster-version",
                "--name",
                CLUSTER,
                "--kubernetes-version",
                "1.30",
            ],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("InvalidParameterException"), "{err}");
    assert!(
        err.contains("Unsupported Kubernetes minor version update from 1.28 to 1.30"),
        "{err}"
    );

    let ep2 = ep.clone();
    let out = tokio::task::spawn_blocking(move || {
        aws(
            &ep2,
            &[
                "eks",
                "describe-addon-versions",
                "--kubernetes-version",
                "1.30",
                "--addon-name",
                "coredns",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["addons"][0]["addonName"], "coredns");
    h.sim.shutdown().await.unwrap();
}
