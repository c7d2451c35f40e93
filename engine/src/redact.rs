//! The last line of defence against leaking a secret: every string this process knows to
//! be secret (sensitive variable values, credentials read from the environment) is
//! replaced by `(sensitive value)` in whatever kup writes through [`redact`]: terminal
//! output, JSON lines, logs, error messages and journal records.
//!
//! It is not the first line: sensitive values are kept out of plans, state and the
//! journal by the data itself (see [`crate::model::Argv`]), because a file with a checksum
//! cannot be rewritten after the fact, and a value this process never learned (a secret
//! typed into another run) cannot be recognised.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a sensitive value shows as, everywhere.
pub const SENSITIVE: &str = "(sensitive value)";

/// Shorter strings are not redacted: replacing every "on" or "1" in the output would make
/// it unreadable while protecting nothing a guess would not find.
pub const MIN_SECRET_LEN: usize = 4;

/// Longest first, so a secret that contains another is replaced whole.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Environment variables whose values are credentials, redacted wherever they appear.
/// (AWS_ACCESS_KEY_ID is not secret on its own, but it names the account's key and users
/// expect it kept out of logs with the rest.)
pub const CREDENTIAL_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_EKS",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN",
    "ARM_CLIENT_SECRET",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
];

/// Remember `secret` (and its JSON-escaped spelling, which is how it would appear inside
/// a JSON document) for every later [`redact`].
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SECRET_LEN {
        return;
    }
    let quoted = serde_json::to_string(secret).expect("a string serializes");
    let escaped = &quoted[1..quoted.len() - 1];
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for s in [secret, escaped] {
        if !s.is_empty() && !all.iter().any(|k| k == s) {
            all.push(s.to_string());
        }
    }
    all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
}

/// Register the credentials found in `env` (see [`CREDENTIAL_ENV`]).
pub fn register_credentials<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (k, v) in env {
        if CREDENTIAL_ENV.contains(&k) {
            register(v);
        }
    }
}

/// `text` with every registered secret replaced by [`SENSITIVE`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), SENSITIVE));
        }
    }
    out
}

/// [`redact`] for bytes that are mostly UTF-8 (a log line, a JSON record). Bytes that are
/// not valid UTF-8 are passed through unchanged when no secret is registered, and
/// otherwise redacted in their lossy form.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if SECRETS.read().unwrap_or_else(|e| e.into_inner()).is_empty() {
        return Cow::Borrowed(bytes);
    }
    let text = String::from_utf8_lossy(bytes);
    match redact(&text) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_replaced_longest_first_and_short_ones_are_ignored() {
        register("tok-7f3a");
        register("tok-7f3a-extended");
        register("ab");
        register("quo\"te-secret");
        assert_eq!(
            redact("a tok-7f3a-extended and tok-7f3a, ab"),
            "a (sensitive value) and (sensitive value), ab"
        );
        // Inside JSON the quote is escaped; that spelling is redacted too.
        let json = serde_json::to_string("quo\"te-secret").unwrap();
        assert_eq!(redact(&json), "\"(sensitive value)\"");
        assert_eq!(redact("quo\"te-secret"), "(sensitive value)");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(
            &*redact_bytes(b"x tok-7f3a y"),
            b"x (sensitive value) y".as_slice()
        );
    }

    #[test]
    fn credentials_are_taken_from_known_variables_only() {
        register_credentials([
            ("AZURE_CLIENT_SECRET", "azure-cred-91c2"),
            ("HOME", "/home/someone-91c2"),
        ]);
        assert_eq!(redact("azure-cred-91c2"), "(sensitive value)");
        assert_eq!(redact("/home/someone-91c2"), "/home/someone-91c2");
    }
}
