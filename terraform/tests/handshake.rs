//! The binary speaks go-plugin's handshake: its first line on stdout announces protocol 6
//! over gRPC on a loopback TCP port that accepts connections. (This test also makes
//! `cargo test --workspace` build the binary, which the end-to-end Terraform tests run.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn announces_plugin_protocol_6_on_a_listening_loopback_port() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_terraform-provider-kup"))
        // As Terraform starts its providers (without PLUGIN_CLIENT_CERT: plain gRPC).
        .env("TF_PLUGIN_MAGIC_COOKIE", "f1c9e9ab0d0ef0fcb0e4f8f8a6a7a3fa")
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the provider binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    let connected = fields
        .get(3)
        .and_then(|addr| std::net::TcpStream::connect(addr).ok())
        .is_some();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fields.len(), 6, "handshake line: {line:?}");
    assert_eq!(
        (fields[0], fields[1], fields[2], fields[4]),
        ("1", "6", "tcp", "grpc"),
        "{line:?}"
    );
    assert!(fields[3].starts_with("127.0.0.1:"), "{line:?}");
    assert!(connected, "nothing listens at {}", fields[3]);
}
