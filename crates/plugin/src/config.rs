//! Configuration of the `memory-plugin` binary.
//!
//! Every setting is an environment variable and a flag (the flag wins), all
//! listed by `memory-plugin --help`. Parsing runs in two stages: [`Cli`]
//! holds the raw values clap read, [`Cli::into_settings`] checks them and
//! returns the [`Settings`] the server starts from, so a bad value stops the
//! program before any connection is made. Secrets never reach `Debug` or
//! `--help` output: database URLs are shown through [`redact_url`].

use crate::server::ServerConfig;
use crate::store::DEFAULT_DATABASE_URL;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use std::fmt;
use std::time::Duration;

/// Largest embedding dimension any backend accepts (pgvector's `vector` limit).
pub const EMBEDDING_DIM_MAX: usize = 16000;

/// Raw command line and environment, as clap reads them.
#[derive(Parser, Clone)]
#[command(
    name = "memory-plugin",
    version,
    about = "Memory Plugin v1 server on Postgres or an embedded SQLite file",
    long_about = "Memory Plugin v1 server on Postgres or an embedded SQLite file.\n\n\
        Every option is also read from the environment variable shown next to it; \
        a flag wins over the variable. Boolean variables accept 1/true/yes and 0/false/no."
)]
pub struct Cli {
    /// Database to store in: postgres://… or postgresql://… selects Postgres;
    /// sqlite:PATH or sqlite::memory: selects SQLite. Absent: the SQLite file
    /// ./memory-plugin.db (created if missing).
    #[arg(
        long,
        env = "MEMORY_PLUGIN_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Address to listen on. Binding a non-loopback address without a token
    /// logs a warning.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_LISTEN_ADDR",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9100"
    )]
    pub listen_addr: String,

    /// Do not create or migrate the schema at start (it must already exist).
    #[arg(
        long,
        env = "MEMORY_PLUGIN_SKIP_MIGRATE",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub skip_migrate: bool,

    /// Postgres schema holding the plugin's tables (created if missing).
    #[arg(
        long,
        env = "MEMORY_PLUGIN_SCHEMA",
        value_name = "NAME",
        default_value = "memory_plugin"
    )]
    pub schema: String,

    /// Dimension of every embedding. Unset: 1536 on Postgres; on SQLite the
    /// dimension of the embeddings the file already holds, or 384 (the
    /// gateway's built-in model, all-MiniLM-L6-v2) for a file without any.
    /// On SQLite a value that contradicts the stored embeddings stops the
    /// start.
    #[arg(long, env = "MEMORY_PLUGIN_EMBEDDING_DIM", value_name = "N")]
    pub embedding_dim: Option<usize>,

    /// Bearer token every route but /v1/health requires. Unset: no auth.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Serve plain v1: no extension (batch, list, created_at, scan) advertised or
    /// routed.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_V1_ONLY",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub v1_only: bool,

    /// Seconds between sweeps that delete expired memories and namespaces;
    /// 0 disables the sweep (expired rows are still never returned).
    #[arg(
        long,
        env = "MEMORY_PLUGIN_SWEEP_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    pub sweep_interval: u64,

    /// Largest number of database connections (Postgres), the group
    /// committers' included.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10
    )]
    pub max_connections: u32,

    /// Group committers for single writes (Postgres): each gathers the
    /// writes queued at that moment into one transaction, on a connection
    /// of its own out of the pool size. 0 (the default): half the host's
    /// processors, 1 to 16, at most the pool size minus two; a number
    /// given leaves at least one connection for reads.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_WRITE_COMMITTERS",
        value_name = "N",
        default_value_t = 0
    )]
    pub write_committers: usize,

    /// Log filter, in tracing's EnvFilter syntax (e.g. info,
    /// memory_plugin=debug).
    #[arg(
        long,
        env = "MEMORY_PLUGIN_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,

    /// Log line format.
    #[arg(
        long,
        env = "MEMORY_PLUGIN_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

impl fmt::Debug for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cli")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("listen_addr", &self.listen_addr)
            .field("skip_migrate", &self.skip_migrate)
            .field("schema", &self.schema)
            .field("embedding_dim", &self.embedding_dim)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("v1_only", &self.v1_only)
            .field("sweep_interval", &self.sweep_interval)
            .field("max_connections", &self.max_connections)
            .field("write_committers", &self.write_committers)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "MEMORY_PLUGIN_DATABASE_URL {0} is not supported; use postgres://…, postgresql://…, \
         sqlite:PATH or sqlite::memory:"
    )]
    UnsupportedDatabaseUrl(String),
    #[error(
        "MEMORY_PLUGIN_SCHEMA {0:?} is not a valid schema name; use lowercase letters, digits \
         and _ (not starting with a digit), at most 63 characters"
    )]
    InvalidSchema(String),
    #[error("MEMORY_PLUGIN_EMBEDDING_DIM {0} is out of range; expected 1..={EMBEDDING_DIM_MAX}")]
    InvalidEmbeddingDim(usize),
    #[error("MEMORY_PLUGIN_MAX_CONNECTIONS must be at least 1")]
    InvalidMaxConnections,
    #[error("MEMORY_PLUGIN_LISTEN_ADDR is empty")]
    EmptyListenAddr,
}

/// Checked settings the binary starts from.
#[derive(Clone)]
pub struct Settings {
    /// The database URL (default [`DEFAULT_DATABASE_URL`]); print it only
    /// through [`redact_url`].
    pub database_url: String,
    pub backend: Backend,
    pub listen_addr: String,
    pub migrate: bool,
    pub schema: String,
    /// `None`: the backend's default (see [`Cli::embedding_dim`]).
    pub embedding_dim: Option<usize>,
    pub max_connections: u32,
    /// `None`: derived from the host and the pool.
    pub write_committers: Option<usize>,
    pub server: ServerConfig,
    pub log: String,
    pub log_format: LogFormat,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("backend", &self.backend)
            .field("listen_addr", &self.listen_addr)
            .field("migrate", &self.migrate)
            .field("schema", &self.schema)
            .field("embedding_dim", &self.embedding_dim)
            .field("max_connections", &self.max_connections)
            .field("write_committers", &self.write_committers)
            .field("token", &self.server.token.as_ref().map(|_| "***"))
            .field("v1_only", &self.server.v1_only)
            .field("sweep_interval", &self.server.sweep_interval)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Cli {
    /// Checks every value and builds the [`Settings`].
    ///
    /// # Errors
    ///
    /// The first setting that cannot be used; messages show URLs redacted.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let database_url = self
            .database_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let backend = backend_of(&database_url)
            .ok_or_else(|| ConfigError::UnsupportedDatabaseUrl(redact_url(&database_url)))?;
        if !is_valid_schema_name(&self.schema) {
            return Err(ConfigError::InvalidSchema(self.schema));
        }
        if let Some(dim) = self.embedding_dim {
            if dim == 0 || dim > EMBEDDING_DIM_MAX {
                return Err(ConfigError::InvalidEmbeddingDim(dim));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::InvalidMaxConnections);
        }
        let listen_addr = self.listen_addr.trim().to_string();
        if listen_addr.is_empty() {
            return Err(ConfigError::EmptyListenAddr);
        }
        Ok(Settings {
            database_url,
            backend,
            listen_addr,
            migrate: !self.skip_migrate,
            schema: self.schema,
            embedding_dim: self.embedding_dim,
            max_connections: self.max_connections,
            write_committers: (self.write_committers > 0).then_some(self.write_committers),
            server: ServerConfig {
                token: self.token.filter(|t| !t.is_empty()),
                v1_only: self.v1_only,
                sweep_interval: Duration::from_secs(self.sweep_interval),
            },
            log: self.log,
            log_format: self.log_format,
        })
    }
}

/// The backend a database URL selects, or `None` for an unsupported scheme.
pub fn backend_of(url: &str) -> Option<Backend> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else if lower.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else {
        None
    }
}

/// A Postgres identifier the plugin accepts as its schema name.
fn is_valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The URL with its password (in the authority or as a `password` query
/// parameter) replaced by `***`; scheme, user, host and database stay.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        if parsed.query().is_some() {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let secret =
                        k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
                    (
                        k.into_owned(),
                        if secret { "***".into() } else { v.into_owned() },
                    )
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    // Not parseable as a URL: still hide anything between `user:` and `@`.
    redact_authority_by_hand(url)
}

fn redact_authority_by_hand(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

/// The password of a database URL, raw and percent-decoded, for scrubbing
/// error texts that might quote it.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(p) = parsed.password() {
            secrets.push(p.to_string());
            if let Ok(decoded) = percent_decode(p) {
                secrets.push(decoded);
            }
        }
        for (k, v) in parsed.query_pairs() {
            if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") {
                secrets.push(v.into_owned());
            }
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// Replaces every occurrence of each secret in `text` with `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["memory-plugin"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.into_settings().map_err(|e| e.to_string())
    }

    #[test]
    fn redact_url_hides_password_and_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db.example:5432/app?sslmode=disable"),
            "postgres://alice:***@db.example:5432/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://bob@localhost/app"),
            "postgresql://bob@localhost/app"
        );
        let q = redact_url("postgres://u@h/db?password=hunter2&sslmode=require");
        assert!(!q.contains("hunter2"), "{q}");
        assert!(q.contains("sslmode=require"), "{q}");
        assert_eq!(
            redact_url("sqlite:./memory-plugin.db"),
            "sqlite:./memory-plugin.db"
        );
    }

    #[test]
    fn redact_by_hand_covers_unparseable_urls() {
        let r = redact_authority_by_hand("postgres://u:p w@h:99999/db");
        assert_eq!(r, "postgres://u:***@h:99999/db");
        assert_eq!(redact_authority_by_hand("no scheme here"), "no scheme here");
    }

    #[test]
    fn scrub_removes_raw_and_decoded_passwords() {
        let secrets = url_secrets("postgres://u:p%40ss@h/db");
        assert!(secrets.contains(&"p%40ss".to_string()));
        assert!(secrets.contains(&"p@ss".to_string()));
        assert_eq!(
            scrub("auth failed for p@ss", &secrets),
            "auth failed for ***"
        );
    }

    #[test]
    fn database_url_selects_backend() {
        assert_eq!(backend_of("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("PostgreSQL://h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(backend_of("sqlite:/tmp/x.db"), Some(Backend::Sqlite));
        assert_eq!(backend_of("mysql://h/db"), None);
    }

    #[test]
    fn write_committers_default_to_derived() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.write_committers, None);
        let s = parse(&["--write-committers", "0"]).unwrap();
        assert_eq!(s.write_committers, None);
        assert!(parse(&["--write-committers", "-1"]).is_err());
    }

    #[test]
    fn flags_build_settings() {
        let s = parse(&[
            "--database-url",
            "postgres://u:pw@h/db",
            "--listen-addr",
            "0.0.0.0:8080",
            "--skip-migrate",
            "--schema",
            "mp_2",
            "--embedding-dim",
            "3",
            "--token",
            "t0k",
            "--v1-only",
            "--sweep-interval",
            "5",
            "--write-committers",
            "3",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(s.write_committers, Some(3));
        assert_eq!(s.backend, Backend::Postgres);
        assert!(!s.migrate);
        assert_eq!(s.schema, "mp_2");
        assert_eq!(s.embedding_dim, Some(3));
        assert_eq!(s.server.token.as_deref(), Some("t0k"));
        assert!(s.server.v1_only);
        assert_eq!(s.server.sweep_interval, Duration::from_secs(5));
        assert_eq!(s.log_format, LogFormat::Json);
        let debug = format!("{s:?}");
        assert!(!debug.contains("pw@") && !debug.contains("t0k"), "{debug}");
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let e = parse(&["--database-url", "mysql://u:pw@h/db"]).unwrap_err();
        assert!(
            e.contains("MEMORY_PLUGIN_DATABASE_URL") && !e.contains("pw"),
            "{e}"
        );
        let e = parse(&["--schema", "Robert'); DROP"]).unwrap_err();
        assert!(e.contains("MEMORY_PLUGIN_SCHEMA"), "{e}");
        assert_eq!(
            parse(&[]).unwrap().embedding_dim,
            None,
            "unset: the backend decides"
        );
        let e = parse(&["--embedding-dim", "0"]).unwrap_err();
        assert!(e.contains("MEMORY_PLUGIN_EMBEDDING_DIM"), "{e}");
        assert!(parse(&["--embedding-dim", "-1"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
    }
}
