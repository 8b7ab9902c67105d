//! The command line: flags in the backfill's runbook shape, then the two
//! plugin URLs from flags or the environment.

use std::fmt;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read both sides, say what `-apply` would do; write nothing.
    DryRun,
    /// Create missing namespaces and write missing or differing memories.
    Apply,
    /// Compare both sides exactly and report every difference.
    Verify,
}

impl Mode {
    /// The flag that selects this mode.
    pub fn flag(self) -> &'static str {
        match self {
            Mode::DryRun => "-dry-run",
            Mode::Apply => "-apply",
            Mode::Verify => "-verify",
        }
    }
}

/// Which memories a run covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only namespaces whose name starts with this.
    pub namespace_prefix: Option<String>,
}

impl Selection {
    /// Whether a memory of `namespace` is covered.
    pub fn covers(&self, namespace: &str) -> bool {
        let name_ok = match self.namespace.as_deref() {
            Some(n) => n == namespace,
            None => true,
        };
        let prefix_ok = match self.namespace_prefix.as_deref() {
            Some(p) => namespace.starts_with(p),
            None => true,
        };
        name_ok && prefix_ok
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    /// Source plugin URL (flag or `MEMORY_MIGRATE_FROM`); empty with `-from-database`.
    pub from: String,
    /// Source read from a plugin's own Postgres tables instead (`-from-database`).
    pub from_database: Option<String>,
    /// Schema of those tables (`-from-schema`, default `memory_plugin`).
    pub from_schema: String,
    /// Target plugin URL (flag or `MEMORY_MIGRATE_TO`).
    pub to: String,
    pub from_token: Option<String>,
    pub to_token: Option<String>,
    /// At most this many memory writes (apply) in this run.
    pub limit: Option<u64>,
    pub selection: Selection,
    /// Move memories without their embeddings (`-skip-embeddings`), for
    /// a target whose embedding dimension differs from the source's.
    pub skip_embeddings: bool,
    /// Apply: compute an embedding for every memory that arrives without
    /// one (`-embed`), with the embedder of the `MEMORY_EMBED*` variables.
    pub embed: bool,
    pub json: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Run(Box<Plan>),
}

/// A usage or configuration mistake (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Environment variable of the source plugin URL.
pub const ENV_FROM: &str = "MEMORY_MIGRATE_FROM";
/// Environment variable of the target plugin URL.
pub const ENV_TO: &str = "MEMORY_MIGRATE_TO";
/// Environment variable of the source plugin's bearer token.
pub const ENV_FROM_TOKEN: &str = "MEMORY_MIGRATE_FROM_TOKEN";
/// Environment variable of the target plugin's bearer token.
pub const ENV_TO_TOKEN: &str = "MEMORY_MIGRATE_TO_TOKEN";

/// `-help` text.
pub const HELP: &str = "\
memory-migrate: moves every memory, with its namespace settings, from one
Memory Plugin to another.

usage: memory-migrate (-dry-run | -apply | -verify) -from=<url> -to=<url> [flags]

modes (exactly one):
  -dry-run                 say what -apply would create, what is identical, what differs
  -apply                   create missing namespaces, write missing or differing memories
  -verify                  compare both sides exactly; exit 1 on any difference

flags:
  -from=<url>              source plugin (env MEMORY_MIGRATE_FROM); must advertise `scan`
  -from-database=<url>     instead of -from: read a v1-only plugin's own Postgres tables
  -from-schema=<name>      their schema (default memory_plugin)
  -to=<url>                target plugin (env MEMORY_MIGRATE_TO)
  -limit=N                 apply: at most N memory writes this run (run again to continue)
  -namespace=<name>        only this namespace
  -namespace-prefix=<p>    only namespaces whose name starts with <p>
  -skip-embeddings         leave embeddings behind (when the two dimensions differ)
  -embed                   apply: embed every memory that arrives without an embedding
                           (the source has none, or -skip-embeddings), 64 texts per call;
                           a target row with an embedding and otherwise identical is left
                           alone. The target must advertise `embedding` with the
                           embedder's dimension
  --json                   print the report as JSON
  -help                    this text

environment:
  MEMORY_MIGRATE_FROM_TOKEN, MEMORY_MIGRATE_TO_TOKEN   bearer tokens of the two plugins
  MEMORY_EMBED (local | remote), MEMORY_EMBED_MODEL_DIR, MEMORY_EMBED_THREADS,
  MEMORY_EMBED_PRECISION (auto | f32), MEMORY_EMBED_URL, MEMORY_EMBED_MODEL, MEMORY_EMBED_API_KEY, MEMORY_EMBED_DIMENSION
                                                       the embedder of -embed

exit codes: 0 clean, 1 differences or row errors, 2 usage or configuration
";

const VALUE_FLAGS: &[&str] = &[
    "from",
    "to",
    "limit",
    "namespace",
    "namespace-prefix",
    "from-database",
    "from-schema",
];

/// Default of `-from-schema`.
pub const DEFAULT_SCHEMA: &str = "memory_plugin";

/// Parses the arguments (without the program name), reading missing URLs
/// and the tokens through `env`.
///
/// # Errors
/// [`UsageError`] for anything an operator must fix.
pub fn parse<I, S>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut modes = Vec::new();
    let (mut from, mut to, mut limit, mut namespace, mut prefix) = (None, None, None, None, None);
    let (mut from_database, mut from_schema): (Option<String>, Option<String>) = (None, None);
    let mut json = false;
    let mut skip_embeddings = false;
    let mut embed = false;
    let mut help = false;
    for flag in memory_backfill::cli::split_flags(&args, VALUE_FLAGS).map_err(usage)? {
        let name = flag.name;
        if let Some(value) = flag.value {
            match name.as_str() {
                "from" => from = Some(value),
                "from-database" => from_database = Some(value),
                "from-schema" => {
                    if !crate::db::valid_schema(value.trim()) {
                        return Err(usage(format!(
                            "-from-schema: {value:?} is not a lowercase SQL identifier"
                        )));
                    }
                    from_schema = Some(value.trim().to_string());
                }
                "to" => to = Some(value),
                "limit" => {
                    let n: u64 = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            usage(format!("-limit: {value:?} is not a positive integer"))
                        })?;
                    limit = Some(n);
                }
                "namespace" => {
                    memory_contract::validate::namespace_name("-namespace", value.trim())
                        .map_err(|e| usage(e.to_string()))?;
                    namespace = Some(value.trim().to_string());
                }
                _ => {
                    if value.is_empty() {
                        return Err(usage("-namespace-prefix must not be empty"));
                    }
                    prefix = Some(value);
                }
            }
            continue;
        }
        match name.as_str() {
            "dry-run" | "dryrun" => modes.push(Mode::DryRun),
            "apply" => modes.push(Mode::Apply),
            "verify" => modes.push(Mode::Verify),
            "json" => json = true,
            "skip-embeddings" => skip_embeddings = true,
            "embed" => embed = true,
            "help" | "h" => help = true,
            other => {
                return Err(usage(format!(
                    "unknown flag -{other} (see -help for the list)"
                )))
            }
        }
    }
    if help {
        return Ok(Parsed::Help);
    }
    let mode = match modes.as_slice() {
        [m] => *m,
        [] => return Err(usage("choose one of -dry-run, -apply, -verify")),
        many => {
            let names: Vec<&str> = many.iter().map(|m| m.flag()).collect();
            return Err(usage(format!(
                "choose exactly one of -dry-run, -apply, -verify (got {})",
                names.join(" ")
            )));
        }
    };
    if embed && mode != Mode::Apply {
        return Err(usage("-embed only applies to -apply"));
    }
    let nonblank = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let from_database = nonblank(from_database);
    let to = nonblank(to)
        .or_else(|| nonblank(env(ENV_TO)))
        .ok_or_else(|| usage(format!("no target plugin: set -to=<url> or {ENV_TO}")))?;
    check_url("-to", &to)?;
    let from = match &from_database {
        Some(db) => {
            if from.is_some() {
                return Err(usage("give -from or -from-database, not both"));
            }
            if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                return Err(usage(format!(
                    "-from-database: {} is not a postgres:// URL",
                    shown_url(db)
                )));
            }
            String::new()
        }
        None => {
            if from_schema.is_some() {
                return Err(usage("-from-schema needs -from-database"));
            }
            let from = nonblank(from)
                .or_else(|| nonblank(env(ENV_FROM)))
                .ok_or_else(|| {
                    usage(format!(
                        "no source: set -from=<url> (or {ENV_FROM}) or -from-database=<postgres URL>"
                    ))
                })?;
            check_url("-from", &from)?;
            if url::Url::parse(&from).ok().map(|u| mask_url(&u))
                == url::Url::parse(&to).ok().map(|u| mask_url(&u))
            {
                return Err(usage(format!(
                    "-from and -to are the same plugin ({})",
                    shown_url(&from)
                )));
            }
            from
        }
    };
    Ok(Parsed::Run(Box::new(Plan {
        mode,
        from,
        from_database,
        from_schema: from_schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
        to,
        from_token: nonblank(env(ENV_FROM_TOKEN)),
        to_token: nonblank(env(ENV_TO_TOKEN)),
        limit,
        selection: Selection {
            namespace,
            namespace_prefix: prefix,
        },
        skip_embeddings,
        embed,
        json,
    })))
}

fn check_url(what: &str, raw: &str) -> Result<(), UsageError> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(usage(format!(
            "{what}: {} is not an http(s) URL with a host",
            mask_url(&u)
        ))),
        Err(e) => Err(usage(format!(
            "{what}: {} is not a URL ({e})",
            shown_url(raw)
        ))),
    }
}

/// A URL with any password replaced by `***`.
pub fn mask_url(url: &url::Url) -> String {
    memory_backfill::config::redact_url(url)
}

/// `raw` for a message: masked when it parses, otherwise everything after
/// a `:` before an `@` hidden.
pub fn shown_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => mask_url(&u),
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let userinfo = &raw[s + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &raw[..s + 3], &raw[at..]),
                    None => raw.to_string(),
                }
            }
            _ => raw.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn plan(args: &[&str]) -> Result<Plan, UsageError> {
        match parse(args.iter().copied(), no_env)? {
            Parsed::Run(p) => Ok(*p),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn one_or_two_dashes_and_both_value_styles() {
        let p = plan(&[
            "--apply",
            "-from",
            "http://a:1",
            "--to=http://b:2",
            "-limit=5",
            "-namespace-prefix",
            "team:",
            "--json",
        ])
        .unwrap();
        assert_eq!(p.mode, Mode::Apply);
        assert_eq!(p.from, "http://a:1");
        assert_eq!(p.to, "http://b:2");
        assert_eq!(p.limit, Some(5));
        assert_eq!(p.selection.namespace_prefix.as_deref(), Some("team:"));
        assert!(p.json);
    }

    #[test]
    fn exactly_one_mode() {
        assert!(plan(&["-from=http://a", "-to=http://b"]).is_err());
        assert!(plan(&["-apply", "-verify", "-from=http://a", "-to=http://b"]).is_err());
    }

    #[test]
    fn urls_from_env_and_passwords_masked() {
        let env = |k: &str| match k {
            ENV_FROM => Some("http://a:1".to_string()),
            ENV_TO => Some("http://b:2".to_string()),
            ENV_TO_TOKEN => Some("t".to_string()),
            _ => None,
        };
        let Parsed::Run(p) = parse(["-verify"], env).unwrap() else {
            panic!()
        };
        assert_eq!(p.to_token.as_deref(), Some("t"));
        let e = plan(&["-apply", "-from=ftp://u:secret@h/", "-to=http://b"]).unwrap_err();
        assert!(!e.0.contains("secret"), "{e}");
        assert!(e.0.contains("***"), "{e}");
        let e = plan(&["-apply", "-from=http://a", "-to=http://a"]).unwrap_err();
        assert!(e.0.contains("same plugin"), "{e}");
        assert!(plan(&["-apply", "-from=http://a", "-to=http://b", "-limit=0"]).is_err());
        assert!(plan(&["-apply", "-from=http://a", "-to=http://b", "-bogus"]).is_err());
    }

    #[test]
    fn from_database_instead_of_from() {
        let p = plan(&[
            "-verify",
            "-from-database=postgres://u:p@h/db",
            "-from-schema",
            "plugin_x",
            "-to=http://b",
        ])
        .unwrap();
        assert_eq!(p.from_database.as_deref(), Some("postgres://u:p@h/db"));
        assert_eq!(p.from_schema, "plugin_x");
        assert!(p.from.is_empty());
        assert!(plan(&[
            "-verify",
            "-from=http://a",
            "-from-database=postgres://h/db",
            "-to=http://b"
        ])
        .is_err());
        assert!(plan(&["-verify", "-from-database=mysql://h/db", "-to=http://b"]).is_err());
        assert!(plan(&[
            "-verify",
            "-from-database=postgres://h/db",
            "-from-schema=Bad;",
            "-to=http://b"
        ])
        .is_err());
        assert!(plan(&[
            "-verify",
            "-from=http://a",
            "-from-schema=x",
            "-to=http://b"
        ])
        .is_err());
    }

    #[test]
    fn embed_is_an_apply_flag() {
        let p = plan(&["-apply", "-embed", "-from=http://a", "-to=http://b"]).unwrap();
        assert!(p.embed);
        let p = plan(&["-apply", "-from=http://a", "-to=http://b"]).unwrap();
        assert!(!p.embed);
        let e = plan(&["-verify", "-embed", "-from=http://a", "-to=http://b"]).unwrap_err();
        assert!(e.0.contains("-embed only applies to -apply"), "{e}");
        assert!(plan(&["-dry-run", "--embed", "-from=http://a", "-to=http://b"]).is_err());
    }

    #[test]
    fn selection_covers() {
        let s = Selection {
            namespace: None,
            namespace_prefix: Some("team:".into()),
        };
        assert!(s.covers("team:1"));
        assert!(!s.covers("org:1"));
        assert!(Selection::default().covers("org:1"));
    }
}
