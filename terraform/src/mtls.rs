//! go-plugin's automatic mutual TLS, in front of the plugin server.
//!
//! Terraform starts a provider with its client certificate in `PLUGIN_CLIENT_CERT` and
//! expects the provider to print its own certificate in the handshake line. That client
//! certificate is self-signed with `IsCA: true`, and rustls's WebPKI verifier (which
//! `tf-provider`'s TLS goes through) rightly refuses a CA certificate presented as an end
//! entity, so every connection from Terraform would fail its handshake. Instead the gRPC
//! server runs without TLS on a loopback port only this process knows, and this module
//! terminates TLS for Terraform: it presents a fresh self-signed certificate (announced in
//! the handshake, as go-plugin wants) and accepts exactly the client certificate Terraform
//! announced, byte for byte, which is stricter than chain validation.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Accepts one client certificate only: the one Terraform put in `PLUGIN_CLIENT_CERT`.
#[derive(Debug)]
struct PinnedClient {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the client certificate is not the one in PLUGIN_CLIENT_CERT".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A self-signed certificate for `localhost`, as go-plugin's client expects (it trusts
/// exactly the certificate in the handshake line, for the name `localhost`).
fn server_identity() -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let mut params = rcgen::CertificateParams::new(["localhost".to_string()])?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "kup");
    dn.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(365);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

fn client_cert(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .context("PLUGIN_CLIENT_CERT is not a PEM certificate")?;
    Ok(CertificateDer::from(der))
}

/// Run `inner` (the plugin server, which prints its plaintext handshake line on stdout)
/// behind mutual TLS for the client certificate `client_pem`.
pub async fn serve<F>(client_pem: &str, inner: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let client = client_cert(client_pem)?;
    // The inner server's handshake line goes into a pipe; Terraform reads ours instead.
    let mut fds = [0; 2];
    // SAFETY: plain POSIX calls on descriptors this function owns; fd 1 is swapped back
    // before anything else writes to it.
    let real_stdout = unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            bail!("cannot create a pipe: {}", std::io::Error::last_os_error());
        }
        let saved = libc::dup(1);
        if saved < 0 || libc::dup2(fds[1], 1) < 0 {
            bail!(
                "cannot redirect stdout: {}",
                std::io::Error::last_os_error()
            );
        }
        libc::close(fds[1]);
        saved
    };
    let server = tokio::spawn(inner);
    let line = tokio::task::spawn_blocking(move || {
        // SAFETY: fds[0] is the pipe's read end, owned from here on.
        let reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let mut line = String::new();
        BufReader::new(reader).read_line(&mut line).map(|_| line)
    })
    .await??;
    // SAFETY: restores the descriptor saved above.
    unsafe {
        libc::dup2(real_stdout, 1);
        libc::close(real_stdout);
    }
    // `1|6|tcp|127.0.0.1:PORT|grpc|`
    let parts: Vec<&str> = line.trim().split('|').collect();
    let inner_addr: SocketAddr = match parts.as_slice() {
        [_, _, "tcp", addr, "grpc", ..] => addr.parse()?,
        _ => bail!("the plugin server printed an unexpected handshake: {line:?}"),
    };

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (cert, key) = server_identity()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(PinnedClient {
            cert: client,
            provider,
        }))
        .with_single_cert(vec![cert.clone()], key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}|{}|tcp|{addr}|grpc|{}",
            parts[0],
            parts[1],
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(cert.as_ref())
        )?;
        out.flush()?;
    }
    let accept = async move {
        loop {
            let (tcp, _) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let result: anyhow::Result<()> = async {
                    let mut tls = acceptor.accept(tcp).await?;
                    let mut plain = tokio::net::TcpStream::connect(inner_addr).await?;
                    plain.set_nodelay(true)?;
                    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    tracing::debug!("plugin connection ended: {e:#}");
                }
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        r = server => r.map_err(|e| anyhow!("the plugin server stopped: {e}"))?,
        r = accept => r,
    }
}
