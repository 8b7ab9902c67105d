//! Caller identity over HTTP: HS256 JSON Web Tokens signed with the
//! gateway's secret.
//!
//! A token's `sub` is the workspace id it speaks for (or `admin` with
//! `"admin": true` for an operator); `exp`, when present, is checked. Only
//! HS256 is accepted: a token naming another algorithm (`none` included) is
//! refused before its signature is looked at. The secret never appears in
//! `Debug` output or logs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The `sub` of an operator's token.
pub const ADMIN_SUBJECT: &str = "admin";

/// The signing secret, redacted in `Debug`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// A secret from configured text (at least 16 bytes).
    ///
    /// # Errors
    ///
    /// When the text is shorter than 16 bytes.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() < 16 {
            return Err("MEMORY_GATEWAY_SECRET must be at least 16 characters".to_string());
        }
        Ok(Secret(text.as_bytes().to_vec()))
    }

    /// Reads the secret kept in `path`, creating it (32 random bytes, hex,
    /// mode 0600) when the file does not exist.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or created.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Secret::from_text(&text)
                    .map_err(|_| format!("the secret file {} is too short", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot read the secret file {}: {e}",
                    path.display()
                ))
            }
        }
        let bytes: [u8; 32] = rand::random();
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(path, &text)
            .map_err(|e| format!("cannot create the secret file {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "created a new signing secret");
        Ok(Secret(text.into_bytes()))
    }
}

/// Creates `path` with mode 0600 and writes `text`; an existing file is kept
/// (another process won the race) and read by the caller next time.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => file.write_all(text.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Who is calling, as a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An agent (or a person) acting as this workspace.
    Workspace(Uuid),
    /// An operator, who may view any workspace.
    Admin,
}

/// Why a token was refused; the text is safe to show (it never holds the
/// token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>` (make one with `memory-gateway token --workspace <id>`)")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token's signature does not match this gateway's secret")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
}

fn mac(secret: &Secret) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(&secret.0).expect("HMAC accepts any key length")
}

/// Signs a token for `caller`, valid for `ttl` (forever when `None`).
pub fn issue(secret: &Secret, caller: Caller, ttl: Option<std::time::Duration>) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = match caller {
        Caller::Workspace(id) => Claims {
            sub: id.to_string(),
            exp: None,
            iat: Some(now),
            admin: false,
        },
        Caller::Admin => Claims {
            sub: ADMIN_SUBJECT.to_string(),
            exp: None,
            iat: Some(now),
            admin: true,
        },
    };
    let claims = Claims {
        exp: ttl.map(|t| now.saturating_add(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))),
        ..claims
    };
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies a token and says who it speaks for.
///
/// # Errors
///
/// [`AuthError`] for a malformed, wrongly signed or expired token.
pub fn verify(secret: &Secret, token: &str) -> Result<Caller, AuthError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("a JWT has three dot-separated parts"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(AuthError::Malformed("the header is not base64url JSON"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(AuthError::Malformed("only HS256 tokens are accepted"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AuthError::Malformed("the signature is not base64url"))?;
    let mut m = mac(secret);
    m.update(&token.as_bytes()[..header_and_payload_len(token)]);
    m.verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(AuthError::Malformed(
            "the claims are not base64url JSON with a `sub`",
        ))?;
    if let Some(exp) = claims.exp {
        if chrono::Utc::now().timestamp() >= exp {
            return Err(AuthError::Expired);
        }
    }
    if claims.admin && claims.sub == ADMIN_SUBJECT {
        return Ok(Caller::Admin);
    }
    Uuid::parse_str(&claims.sub)
        .map(Caller::Workspace)
        .map_err(|_| AuthError::Malformed("`sub` is not a workspace id"))
}

/// Length of `header.payload` in a token with three parts.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

/// Takes the token out of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("expected `Bearer <token>`"));
    }
    Ok(token.trim())
}

/// Parses a time-to-live such as `30d`, `12h`, `15m`, `90s` or `3600`.
///
/// # Errors
///
/// A message naming the accepted forms.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad --ttl {text:?}: use a number with s, m, h or d (e.g. 30d)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "bad --ttl {text:?}: use a number with s, m, h or d (e.g. 30d)"
            ))
        }
    };
    if seconds == 0 {
        return Err("--ttl must be positive".to_string());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::from_text(text).unwrap()
    }

    #[test]
    fn a_token_round_trips_and_other_secrets_refuse_it() {
        let s = secret("0123456789abcdef0123");
        let ws = Uuid::new_v4();
        let token = issue(&s, Caller::Workspace(ws), None);
        assert_eq!(verify(&s, &token), Ok(Caller::Workspace(ws)));
        assert_eq!(
            verify(&secret("another-secret-of-16"), &token),
            Err(AuthError::BadSignature)
        );
        let admin = issue(&s, Caller::Admin, Some(std::time::Duration::from_secs(60)));
        assert_eq!(verify(&s, &admin), Ok(Caller::Admin));
    }

    #[test]
    fn tampered_unsigned_and_expired_tokens_are_refused() {
        let s = secret("0123456789abcdef0123");
        let token = issue(&s, Caller::Workspace(Uuid::new_v4()), None);
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{}"}}"#, Uuid::new_v4()));
        assert_eq!(
            verify(&s, &format!("{head}.{forged}.{sig}")),
            Err(AuthError::BadSignature)
        );
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert!(matches!(
            verify(&s, &format!("{none}.{forged}.")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verify(&s, "garbage"),
            Err(AuthError::Malformed(_))
        ));
        let expired = Claims {
            sub: Uuid::new_v4().to_string(),
            exp: Some(chrono::Utc::now().timestamp() - 5),
            iat: None,
            admin: false,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&expired).unwrap());
        let input = format!("{head}.{payload}");
        let mut m = mac(&s);
        m.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert_eq!(
            verify(&s, &format!("{input}.{sig}")),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn bearer_headers_and_ttls_parse() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert!(bearer(Some("Basic abc")).is_err());
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(parse_ttl("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("0s").is_err());
    }
}
