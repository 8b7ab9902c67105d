//! Environment: the legacy database URL and the plugin URL.
//!
//! Operators reuse the URLs they already have (`...?sslmode=disable`,
//! `...?search_path=app`), so the database URL is taken apart here and turned
//! into connect options, translating what the driver would not understand.
//! Every message names the variable and shows the URL with its password
//! replaced, never the password itself.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::str::FromStr;
use url::Url;

/// A configuration mistake; the binary prints it and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is not set (or empty).
    #[error("{0} is not set; {1}")]
    Missing(&'static str, &'static str),
    /// The variable is set but unusable.
    #[error("{var}: {reason}")]
    Malformed { var: &'static str, reason: String },
}

/// How to reach the legacy database.
#[derive(Debug, Clone)]
pub struct LegacyDbConfig {
    /// Connect options built from the URL.
    pub options: PgConnectOptions,
    /// The URL with its password replaced by `***`, for messages.
    pub display: String,
    /// The password, kept only to scrub it from driver messages.
    secret: Option<String>,
}

impl LegacyDbConfig {
    /// Replaces every occurrence of the password in `text` by `***`.
    pub fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(s) if !s.is_empty() => text.replace(s.as_str(), "***"),
            _ => text.to_string(),
        }
    }
}

/// Name of the legacy database variable.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Name of the plugin URL variable.
pub const MEMORY_PLUGIN_URL: &str = "MEMORY_PLUGIN_URL";

/// Reads `DATABASE_URL` from the environment.
///
/// # Errors
///
/// [`ConfigError`] when it is missing or malformed.
pub fn legacy_db_from_env() -> Result<LegacyDbConfig, ConfigError> {
    match std::env::var(DATABASE_URL) {
        Ok(v) if !v.trim().is_empty() => parse_database_url(v.trim()),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(
            DATABASE_URL,
            "set it to the legacy Postgres URL, e.g. postgres://user:pass@host:5432/db?sslmode=disable",
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Malformed {
            var: DATABASE_URL,
            reason: "is not valid UTF-8".into(),
        }),
    }
}

/// Reads `MEMORY_PLUGIN_URL` from the environment.
///
/// # Errors
///
/// [`ConfigError`] when it is missing or not an http(s) URL.
pub fn plugin_url_from_env() -> Result<Url, ConfigError> {
    match std::env::var(MEMORY_PLUGIN_URL) {
        Ok(v) if !v.trim().is_empty() => parse_plugin_url(v.trim()),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(
            MEMORY_PLUGIN_URL,
            "set it to the target plugin's base URL, e.g. http://127.0.0.1:8080",
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Malformed {
            var: MEMORY_PLUGIN_URL,
            reason: "is not valid UTF-8".into(),
        }),
    }
}

/// Parses a plugin base URL: http or https with a host.
///
/// # Errors
///
/// [`ConfigError::Malformed`] naming `MEMORY_PLUGIN_URL`.
pub fn parse_plugin_url(raw: &str) -> Result<Url, ConfigError> {
    let bad = |reason: String| ConfigError::Malformed {
        var: MEMORY_PLUGIN_URL,
        reason,
    };
    let url = Url::parse(raw).map_err(|e| {
        bad(format!(
            "not a URL ({e}); expected e.g. http://127.0.0.1:8080"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err(bad("has no host".into()));
    }
    Ok(url)
}

/// Shows a URL with any password replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Parses a legacy Postgres URL into connect options.
///
/// Accepted query parameters: `sslmode` (disable, allow, prefer, require,
/// verify-ca, verify-full; TLS through rustls), `sslrootcert`, `sslcert`,
/// `sslkey`, `search_path` (applied as a session setting),
/// `application_name`, `options` (`-c name=value` settings), `host`, `port`,
/// `dbname`, `user`, `password`. Others (`connect_timeout`, ...) are ignored.
///
/// # Errors
///
/// [`ConfigError::Malformed`] naming `DATABASE_URL`, with the password redacted.
pub fn parse_database_url(raw: &str) -> Result<LegacyDbConfig, ConfigError> {
    let bad = |reason: String| ConfigError::Malformed {
        var: DATABASE_URL,
        reason,
    };
    // The url crate error never echoes the input, so it is safe to show.
    let url = Url::parse(raw).map_err(|e| {
        bad(format!(
            "not a URL ({e}); expected postgres://user:pass@host:5432/db"
        ))
    })?;
    let display = redact_url(&url);
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "scheme {:?} is not postgres or postgresql (in {display})",
            url.scheme()
        )));
    }
    let decode = |s: &str| -> Result<String, ConfigError> {
        percent_decode(s).ok_or_else(|| bad(format!("bad percent-encoding in {display}")))
    };
    let mut opts = PgConnectOptions::new_without_pgpass();
    let mut secret = None;
    if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        opts = opts.host(host);
    }
    if let Some(port) = url.port() {
        opts = opts.port(port);
    }
    if !url.username().is_empty() {
        opts = opts.username(&decode(url.username())?);
    }
    if let Some(pass) = url.password() {
        let pass = decode(pass)?;
        opts = opts.password(&pass);
        secret = Some(pass);
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() {
        opts = opts.database(&decode(db)?);
    }
    let mut settings: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "sslmode" | "ssl-mode" => {
                let mode = PgSslMode::from_str(&value).map_err(|_| {
                    bad(format!(
                        "sslmode={value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ))
                })?;
                opts = opts.ssl_mode(mode);
            }
            "search_path" => settings.push(("search_path".into(), value)),
            "application_name" => opts = opts.application_name(&value),
            "options" => {
                for setting in parse_options(&value).map_err(|r| bad(format!("options: {r}")))? {
                    settings.push(setting);
                }
            }
            "host" => opts = opts.host(&value),
            "port" => {
                let port = value
                    .parse::<u16>()
                    .map_err(|_| bad(format!("port={value:?} is not a port number")))?;
                opts = opts.port(port);
            }
            "sslrootcert" => opts = opts.ssl_root_cert(value.as_str()),
            "sslcert" => opts = opts.ssl_client_cert(value.as_str()),
            "sslkey" => opts = opts.ssl_client_key(value.as_str()),
            "dbname" => opts = opts.database(&value),
            "user" => opts = opts.username(&value),
            "password" => {
                opts = opts.password(&value);
                secret = Some(value);
            }
            _ => {}
        }
    }
    if !settings.is_empty() {
        opts = opts.options(settings);
    }
    Ok(LegacyDbConfig {
        options: opts,
        display,
        secret,
    })
}

/// Splits a libpq `options` value (`-c a=b -csearch_path=x`) into settings.
fn parse_options(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut words = value.split_whitespace();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words
                .next()
                .ok_or_else(|| "-c without a setting".to_string())?
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest
        } else if let Some(rest) = word.strip_prefix("--") {
            rest
        } else {
            return Err(format!("unsupported option {word:?}; use -c name=value"));
        };
        let (k, v) = setting
            .split_once('=')
            .ok_or_else(|| format!("{setting:?} is not name=value"))?;
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_urls_are_accepted() {
        let c = parse_database_url(
            "postgres://app:s3cr%40t@db.example:6432/legacy?sslmode=disable&search_path=app,public&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(c.options.get_host(), "db.example");
        assert_eq!(c.options.get_port(), 6432);
        assert_eq!(c.options.get_username(), "app");
        assert_eq!(c.options.get_database(), Some("legacy"));
        assert!(c
            .options
            .get_options()
            .unwrap_or("")
            .contains("search_path"));
        assert!(!c.display.contains("s3cr"), "{}", c.display);
        assert_eq!(c.scrub("failed for s3cr@t"), "failed for ***");
    }

    #[test]
    fn malformed_urls_name_the_variable_and_hide_the_password() {
        for raw in [
            "mysql://u:hunter2@h/db",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "not a url hunter2",
        ] {
            let e = parse_database_url(raw).unwrap_err().to_string();
            assert!(e.starts_with("DATABASE_URL"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn plugin_url_must_be_http() {
        assert!(parse_plugin_url("http://127.0.0.1:8080").is_ok());
        let e = parse_plugin_url("ftp://x").unwrap_err().to_string();
        assert!(e.starts_with("MEMORY_PLUGIN_URL"), "{e}");
        assert!(parse_plugin_url("127.0.0.1:8080").is_err());
    }

    #[test]
    fn libpq_options_are_split() {
        assert_eq!(
            parse_options("-c search_path=a -cstatement_timeout=0").unwrap(),
            vec![
                ("search_path".to_string(), "a".to_string()),
                ("statement_timeout".to_string(), "0".to_string())
            ]
        );
        assert!(parse_options("-x").is_err());
    }
}
