//! A provider block's `ca_file`, read for the clients that can trust it.

use kup_engine::model::TlsSettings;
use kup_engine::provider::{ErrorKind, ProviderError};

/// The PEM bytes of `ca_file`, if set; an error names the file and what is wrong.
pub fn ca_pem(tls: &TlsSettings) -> Result<Option<Vec<u8>>, ProviderError> {
    let Some(path) = &tls.ca_file else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| {
        ProviderError::new(ErrorKind::Other, format!("cannot read ca_file {path}: {e}"))
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ProviderError::new(
            ErrorKind::Other,
            format!("ca_file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(Some(bytes))
}

/// The certificates of `ca_file` (DER), for clients that take them one by one.
pub fn ca_certs_der(tls: &TlsSettings) -> Result<Vec<Vec<u8>>, ProviderError> {
    use base64::Engine;
    let Some(pem) = ca_pem(tls)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&pem);
    let mut out = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body: String = block
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| {
                ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "ca_file {}: a certificate is not valid base64: {e}",
                        tls.ca_file.as_deref().unwrap_or_default()
                    ),
                )
            })?;
        out.push(der);
    }
    Ok(out)
}

/// `builder` trusting `ca_file` besides the system's roots, and skipping verification
/// when the provider block says so.
#[cfg(any(feature = "aks", feature = "eks"))]
pub fn reqwest_builder(
    builder: reqwest::ClientBuilder,
    tls: &TlsSettings,
) -> Result<reqwest::ClientBuilder, ProviderError> {
    let mut builder = builder.tls_danger_accept_invalid_certs(tls.insecure_skip_tls_verify);
    if let Some(pem) = ca_pem(tls)? {
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "ca_file {}: {e}",
                    tls.ca_file.as_deref().unwrap_or_default()
                ),
            )
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}

/// An error and its causes, `: `-separated (an HTTP client's own message rarely says why).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !t.is_empty() && !parts.last().is_some_and(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Does this error chain say the server's certificate was refused?
pub fn is_certificate_error(chain: &str) -> bool {
    chain.contains("certificate") || chain.contains("UnknownIssuer")
}
