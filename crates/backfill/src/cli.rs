//! Command line: raw flags in, a validated [`Plan`] out.
//!
//! Operators' runbooks spell flags Go-style (`-apply -limit=10000`), newer
//! habits use `--apply --limit 10000`; both work, with `=` or a space. Parsing
//! happens in two stages: every flag is read and checked on its own, then the
//! combination is turned into a [`Plan`] before any work starts.

use std::fmt;
use uuid::Uuid;

/// The one thing a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read and map everything, write nothing, report what apply would do.
    DryRun,
    /// Copy legacy rows into the plugin.
    Apply,
    /// Check that the plugin holds what the legacy table holds.
    Verify,
    /// Remove the checkpoint from the plugin (after the cutover).
    ForgetCheckpoint,
}

impl Mode {
    /// The flag that selects this mode.
    pub fn flag(self) -> &'static str {
        match self {
            Mode::DryRun => "-dry-run",
            Mode::Apply => "-apply",
            Mode::Verify => "-verify",
            Mode::ForgetCheckpoint => "-forget-checkpoint",
        }
    }
}

/// Which workspaces `-verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyScope {
    /// N random workspaces whose status is not `removed`.
    Sample(u32),
    /// One workspace.
    Workspace(Uuid),
    /// Every workspace.
    All,
}

/// How `-verify` reads the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMethod {
    /// For `-all`, `checksum` when advertised, else `scan` when advertised;
    /// otherwise `list` when advertised, else `search`.
    #[default]
    Auto,
    /// Extensions `checksum` and `scan`: digests per id bucket on both
    /// sides, then a scan of the buckets that differ (`-all` only).
    Checksum,
    /// Extension `scan`: one pass over every plugin memory in id order (`-all` only).
    Scan,
    /// Extension `list`: each target namespace, page by page.
    List,
    /// v1 searches only.
    Search,
}

impl VerifyMethod {
    /// The method's name in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMethod::Auto => "auto",
            VerifyMethod::Checksum => "checksum",
            VerifyMethod::Scan => "scan",
            VerifyMethod::List => "list",
            VerifyMethod::Search => "search",
        }
    }
}

/// A validated run plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    /// Apply/dry-run: at most this many legacy rows are scanned in this run.
    pub limit: Option<u64>,
    /// Apply/dry-run: only the rows of this workspace.
    pub workspace: Option<Uuid>,
    /// Verify: which workspaces.
    pub verify: VerifyScope,
    /// Verify: seed of the random sample (`setseed`), for reproducible samples.
    pub seed: Option<i64>,
    /// Verify: how the plugin is read.
    pub verify_method: VerifyMethod,
    /// Most rows per batch request.
    pub batch_rows: usize,
    /// Most bytes per batch request body (an item larger than this travels alone).
    pub batch_bytes: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Apply: ignore the stored checkpoint and pass over the whole table again.
    pub restart: bool,
    /// Print the final report as JSON on stdout.
    pub json: bool,
    /// Apply: compute an embedding for every copied row that carries none,
    /// with the embedder the `MEMORY_EMBED*` variables describe.
    pub embed: bool,
}

/// Default rows per batch request.
pub const DEFAULT_BATCH_ROWS: usize = 500;
/// Default bytes per batch request: a quarter of the plugin's 16 MiB batch limit.
pub const DEFAULT_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default number of workspaces `-verify` samples.
pub const DEFAULT_VERIFY_SAMPLE: u32 = 50;
/// Default requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The outcome of parsing: a plan to run, or a request for help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Run(Plan),
}

/// A command-line mistake; the binary prints it and exits 2.
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

/// The `--help` text.
pub const HELP: &str = "\
memory-backfill: copy legacy agent_memories rows into a Memory Plugin v1 server

USAGE:
    memory-backfill -dry-run [-limit=N] [-workspace=UUID] [options]
    memory-backfill -apply   [-limit=N] [-workspace=UUID] [-restart] [-embed] [options]
    memory-backfill -verify  [-verify-sample=N | -workspace=UUID | -all] [-seed=N] [options]
    memory-backfill -forget-checkpoint [options]

Exactly one of -dry-run, -apply, -verify, -forget-checkpoint. Flags take one or two dashes, and a
value after '=' or as the next argument (-limit=10000, --limit 10000).

MODES:
    -dry-run            Read and map every row, write nothing; report counts per
                        scope, namespace kind and skip reason, columns not carried,
                        and (when the plugin can list) rows new/identical/different.
    -apply              Copy rows; resumes after the checkpoint kept in the plugin
                        (a memory in the namespace custom:memory-backfill, left there).
    -verify             Check parity for 50 random non-removed workspaces.
    -forget-checkpoint  After the cutover: remove the checkpoint from the plugin (and
                        its namespace once empty). A later -apply starts from row one.

OPTIONS:
    -limit=N            Scan at most N legacy rows in this run (apply, dry-run).
    -workspace=UUID     Only this workspace's rows (apply, dry-run, verify).
    -restart            Apply: ignore the checkpoint and pass over the whole table.
    -embed              Apply: embed every copied row that has no embedding (batches of
                        64 texts, while earlier batches are written). The embedder comes
                        from MEMORY_EMBED* (below); the plugin must advertise `embedding`
                        with the embedder's dimension. With -restart, rows the plugin
                        already holds with an embedding and the same content are left
                        alone (needs `scan`), so a restart adds embeddings to rows an
                        earlier run copied without one.
    -verify-sample=N    Verify: sample N workspaces instead of 50.
    -all                Verify: every workspace.
    -seed=N             Verify: seed for the random sample (printed when not given).
    -verify-method=M    Verify: auto (default), checksum, scan, list or search. For -all
                        auto uses checksum, else scan, when the plugin advertises it;
                        otherwise list, else search.
    -batch-rows=N       Rows per batch request (1..=1000, default 500).
    -batch-bytes=N      Bytes per batch request (65536..=15728640, default 4194304).
    -concurrency=N      Requests in flight (1..=64, default 4 with batch, 16 without).
    -json               Print the final report as JSON on stdout.
    -help               This text.

ENVIRONMENT:
    DATABASE_URL          Legacy Postgres, e.g. postgres://user:pass@host:5432/db?sslmode=disable
                          (search_path=... and application_name=... are honoured).
    MEMORY_PLUGIN_URL     Target plugin base URL, e.g. http://127.0.0.1:8080
    MEMORY_PLUGIN_TOKEN   Bearer token for the plugin, when it requires one.
    MEMORY_PLUGIN_TIMEOUT Per-request timeout in seconds.
    MEMORY_EMBED          -embed: local (all-MiniLM-L6-v2 in process) or remote; off is refused.
    MEMORY_EMBED_MODEL_DIR  local: directory of model.safetensors, tokenizer.json, config.json.
    MEMORY_EMBED_THREADS  local: threads the model may use.
    MEMORY_EMBED_PRECISION  local: auto (bf16 products where the CPU has AVX-512 BF16) or f32.
    MEMORY_EMBED_URL, MEMORY_EMBED_MODEL, MEMORY_EMBED_API_KEY, MEMORY_EMBED_DIMENSION
                          remote: an OpenAI-compatible /v1/embeddings endpoint.

EXIT CODES:
    0 success; 1 a row failed, a mismatch or an unverified workspace; 2 usage or
    configuration error (including an unreachable database or plugin).
";

#[derive(Default)]
struct RawFlags {
    modes: Vec<Mode>,
    limit: Option<u64>,
    workspace: Option<Uuid>,
    verify_sample: Option<u32>,
    all: bool,
    seed: Option<i64>,
    verify_method: Option<VerifyMethod>,
    batch_rows: Option<usize>,
    batch_bytes: Option<usize>,
    concurrency: Option<usize>,
    restart: bool,
    json: bool,
    embed: bool,
    help: bool,
}

/// Flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "limit",
    "workspace",
    "verify-sample",
    "seed",
    "verify-method",
    "batch-rows",
    "batch-bytes",
    "concurrency",
];

/// One flag of an operator's command line, with its value when it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without dashes, underscores read as dashes (`-dry_run` is `dry-run`).
    pub name: String,
    /// The value of a flag listed in `value_flags`; `None` for the others.
    pub value: Option<String>,
}

/// Splits a command line in the runbook style that `memory-backfill` and
/// `memory-migrate` share: one or two dashes, and for the flags named in
/// `value_flags` a value after `=` or as the next argument. Other flags take
/// no value.
///
/// # Errors
///
/// A one-line message for a stray argument, a missing value, or a value
/// given to a flag that takes none.
pub fn split_flags(args: &[String], value_flags: &[&str]) -> Result<Vec<Flag>, String> {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            return Err(format!(
                "unexpected argument {arg:?}; flags start with '-' (see -help)"
            ));
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Underscores are a common slip: `-dry_run`, `-verify_sample`.
        let name = name.replace('_', "-");
        if value_flags.contains(&name.as_str()) {
            let value = match inline_value {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(i) else {
                        return Err(format!("-{name} needs a value, e.g. -{name}=N"));
                    };
                    i += 1;
                    v.clone()
                }
            };
            flags.push(Flag {
                name,
                value: Some(value),
            });
            continue;
        }
        if let Some(v) = inline_value {
            return Err(format!("-{name} takes no value (got {v:?})"));
        }
        flags.push(Flag { name, value: None });
    }
    Ok(flags)
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// A [`UsageError`] naming the offending flag or combination.
pub fn parse<I, S>(args: I) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut raw = RawFlags::default();
    for flag in split_flags(&args, VALUE_FLAGS).map_err(usage)? {
        let name = flag.name.as_str();
        if let Some(value) = &flag.value {
            set_value(&mut raw, name, value)?;
            continue;
        }
        match name {
            "dry-run" | "dryrun" => raw.modes.push(Mode::DryRun),
            "apply" => raw.modes.push(Mode::Apply),
            "verify" => raw.modes.push(Mode::Verify),
            "forget-checkpoint" => raw.modes.push(Mode::ForgetCheckpoint),
            "all" => raw.all = true,
            "restart" => raw.restart = true,
            "json" => raw.json = true,
            "embed" => raw.embed = true,
            "help" | "h" => raw.help = true,
            other => {
                return Err(usage(format!(
                    "unknown flag -{other} (see -help for the list)"
                )))
            }
        }
    }
    if raw.help {
        return Ok(Parsed::Help);
    }
    build_plan(raw).map(Parsed::Run)
}

fn set_value(raw: &mut RawFlags, name: &str, value: &str) -> Result<(), UsageError> {
    match name {
        "limit" => raw.limit = Some(positive(name, value, u64::MAX)?),
        "workspace" => {
            raw.workspace = Some(Uuid::parse_str(value.trim()).map_err(|_| {
                usage(format!(
                    "-workspace: {:?} is not a UUID",
                    memory_contract::validate::excerpt(value, 64)
                ))
            })?)
        }
        "verify-sample" => raw.verify_sample = Some(positive(name, value, u32::MAX as u64)? as u32),
        "seed" => {
            raw.seed = Some(
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| usage(format!("-seed: {value:?} is not an integer")))?,
            )
        }
        "verify-method" => {
            raw.verify_method = Some(match value.trim().to_ascii_lowercase().as_str() {
                "auto" => VerifyMethod::Auto,
                "checksum" => VerifyMethod::Checksum,
                "scan" => VerifyMethod::Scan,
                "list" => VerifyMethod::List,
                "search" => VerifyMethod::Search,
                _ => {
                    return Err(usage(format!(
                        "-verify-method: {:?} is not one of auto, checksum, scan, list, search",
                        memory_contract::validate::excerpt(value, 32)
                    )))
                }
            })
        }
        "batch-rows" => {
            raw.batch_rows = Some(ranged(
                name,
                value,
                1,
                memory_contract::limits::BATCH_ITEMS_MAX as u64,
            )? as usize)
        }
        "batch-bytes" => {
            raw.batch_bytes = Some(ranged(name, value, 64 * 1024, 15 * 1024 * 1024)? as usize)
        }
        "concurrency" => raw.concurrency = Some(ranged(name, value, 1, 64)? as usize),
        _ => unreachable!("VALUE_FLAGS and set_value list the same flags"),
    }
    Ok(())
}

fn positive(name: &str, value: &str, max: u64) -> Result<u64, UsageError> {
    ranged(name, value, 1, max)
}

fn ranged(name: &str, value: &str, min: u64, max: u64) -> Result<u64, UsageError> {
    let n: u64 = value.trim().parse().map_err(|_| {
        usage(format!(
            "-{name}: {:?} is not a whole number",
            memory_contract::validate::excerpt(value, 32)
        ))
    })?;
    if n < min || n > max {
        return Err(usage(format!(
            "-{name}={n} is out of range; expected {min}..={max}"
        )));
    }
    Ok(n)
}

fn build_plan(raw: RawFlags) -> Result<Plan, UsageError> {
    let mut modes = raw.modes.clone();
    modes.dedup();
    let mode = match modes.as_slice() {
        [] => {
            return Err(usage(
                "no mode given; choose exactly one of -dry-run, -apply, -verify, -forget-checkpoint (see -help)",
            ))
        }
        [one] => *one,
        many => {
            let mut names: Vec<&str> = many.iter().map(|m| m.flag()).collect();
            names.sort_unstable();
            names.dedup();
            if names.len() == 1 {
                many[0]
            } else {
                return Err(usage(format!(
                    "choose exactly one mode; got {}",
                    names.join(" and ")
                )));
            }
        }
    };
    let verify_only = |set: bool, flag: &str| -> Result<(), UsageError> {
        if set && mode != Mode::Verify {
            return Err(usage(format!("{flag} only applies to -verify")));
        }
        Ok(())
    };
    verify_only(raw.verify_sample.is_some(), "-verify-sample")?;
    verify_only(raw.all, "-all")?;
    verify_only(raw.seed.is_some(), "-seed")?;
    verify_only(raw.verify_method.is_some(), "-verify-method")?;
    if raw.limit.is_some() && mode == Mode::Verify {
        return Err(usage(
            "-limit does not apply to -verify; use -verify-sample=N, -workspace=UUID or -all",
        ));
    }
    if raw.restart && mode != Mode::Apply {
        return Err(usage("-restart only applies to -apply"));
    }
    if raw.embed && mode != Mode::Apply {
        return Err(usage("-embed only applies to -apply"));
    }
    if mode == Mode::ForgetCheckpoint && (raw.limit.is_some() || raw.workspace.is_some()) {
        return Err(usage(
            "-forget-checkpoint removes the whole table's checkpoint; -limit and -workspace do not apply",
        ));
    }
    if raw.restart && raw.workspace.is_some() {
        return Err(usage(
            "-restart has no effect with -workspace (a workspace run never uses the checkpoint)",
        ));
    }
    let verify = match (raw.verify_sample, raw.workspace, raw.all) {
        (Some(_), Some(_), _) => {
            return Err(usage("-verify-sample and -workspace cannot be combined"))
        }
        (Some(_), _, true) => return Err(usage("-verify-sample and -all cannot be combined")),
        (_, Some(_), true) if mode == Mode::Verify => {
            return Err(usage("-workspace and -all cannot be combined"))
        }
        (Some(n), None, false) => VerifyScope::Sample(n),
        (None, Some(w), _) => VerifyScope::Workspace(w),
        (None, None, true) => VerifyScope::All,
        (None, None, false) => VerifyScope::Sample(DEFAULT_VERIFY_SAMPLE),
    };
    if raw.seed.is_some() && !matches!(verify, VerifyScope::Sample(_)) {
        return Err(usage("-seed only applies to a sampled -verify"));
    }
    let verify_method = raw.verify_method.unwrap_or_default();
    if matches!(verify_method, VerifyMethod::Scan | VerifyMethod::Checksum)
        && verify != VerifyScope::All
    {
        return Err(usage(format!(
            "-verify-method={} reads every plugin memory, so it needs -all",
            verify_method.as_str()
        )));
    }
    Ok(Plan {
        mode,
        limit: raw.limit,
        workspace: raw.workspace,
        verify,
        seed: raw.seed,
        verify_method,
        batch_rows: raw.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS),
        batch_bytes: raw.batch_bytes.unwrap_or(DEFAULT_BATCH_BYTES),
        concurrency: raw.concurrency.unwrap_or(0),
        restart: raw.restart,
        json: raw.json,
        embed: raw.embed,
    })
}

impl Plan {
    /// Requests in flight: the flag when given, else a default suited to the
    /// write path (batches are big, single writes are small).
    pub fn effective_concurrency(&self, batch: bool) -> usize {
        match self.concurrency {
            0 if batch => DEFAULT_CONCURRENCY,
            0 => 16,
            n => n,
        }
    }

    /// Namespaces merged at once by `-verify` and the dry-run diff: each one
    /// costs a few round trips, so more run at once than write batches.
    pub fn verify_concurrency(&self) -> usize {
        match self.concurrency {
            0 => 8,
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        match parse(args.iter().copied()) {
            Ok(Parsed::Run(p)) => p,
            other => panic!("expected a plan for {args:?}, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e.0,
            other => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn runbook_spellings_work_verbatim() {
        assert_eq!(plan(&["-dry-run"]).mode, Mode::DryRun);
        assert_eq!(plan(&["-apply"]).mode, Mode::Apply);
        let p = plan(&["-apply", "-limit=10000"]);
        assert_eq!((p.mode, p.limit), (Mode::Apply, Some(10000)));
        let id = "6f1d3c2e-8b1a-4c55-9e1b-1d2c3b4a5f60";
        let p = plan(&["-apply", &format!("-workspace={id}")]);
        assert_eq!(p.workspace, Some(Uuid::parse_str(id).unwrap()));
        assert_eq!(plan(&["-verify"]).verify, VerifyScope::Sample(50));
        assert_eq!(
            plan(&["-verify", "-verify-sample=200"]).verify,
            VerifyScope::Sample(200)
        );
        assert_eq!(
            plan(&["-verify", &format!("-workspace={id}")]).verify,
            VerifyScope::Workspace(Uuid::parse_str(id).unwrap())
        );
    }

    #[test]
    fn double_dash_and_space_separated_values_work() {
        let p = plan(&["--apply", "--limit", "10000"]);
        assert_eq!((p.mode, p.limit), (Mode::Apply, Some(10000)));
        let p = plan(&["--apply", "--limit=7", "-batch-rows", "10", "--json"]);
        assert_eq!((p.limit, p.batch_rows, p.json), (Some(7), 10, true));
        assert_eq!(plan(&["--verify", "--all"]).verify, VerifyScope::All);
        let p = plan(&["--verify", "--seed", "-3"]);
        assert_eq!(p.seed, Some(-3));
    }

    #[test]
    fn exactly_one_mode_is_required() {
        assert!(err(&[]).contains("no mode"));
        assert!(err(&["-limit=5"]).contains("no mode"));
        let e = err(&["-apply", "-verify"]);
        assert!(e.contains("-apply") && e.contains("-verify"), "{e}");
        assert!(err(&["-dry-run", "--apply"]).contains("exactly one"));
        assert_eq!(plan(&["-apply", "--apply"]).mode, Mode::Apply);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err(&["-apply", "-limit=abc"]).contains("-limit"));
        assert!(err(&["-apply", "-limit=0"]).contains("out of range"));
        assert!(err(&["-apply", "-limit"]).contains("needs a value"));
        assert!(err(&["-apply", "-workspace=nope"]).contains("not a UUID"));
        assert!(err(&["-apply", "-frobnicate"]).contains("unknown flag -frobnicate"));
        assert!(err(&["-apply=yes"]).contains("takes no value"));
        assert!(err(&["-apply", "stray"]).contains("unexpected argument"));
        assert!(err(&["-apply", "-batch-bytes=10"]).contains("out of range"));
    }

    #[test]
    fn verify_flags_are_refused_elsewhere_and_conflicts_are_caught() {
        assert!(err(&["-apply", "-all"]).contains("-verify"));
        assert!(err(&["-dry-run", "-verify-sample=3"]).contains("-verify"));
        assert!(err(&["-verify", "-limit=3"]).contains("-limit"));
        assert!(err(&["-verify", "-all", "-verify-sample=3"]).contains("cannot be combined"));
        let id = "6f1d3c2e-8b1a-4c55-9e1b-1d2c3b4a5f60";
        assert!(err(&["-verify", "-all", &format!("-workspace={id}")]).contains("cannot"));
        assert!(err(&["-verify", "-all", "-seed=1"]).contains("sampled"));
        assert!(err(&["-verify", "-restart"]).contains("-restart"));
    }

    #[test]
    fn forget_checkpoint_is_a_mode_of_its_own() {
        assert_eq!(plan(&["-forget-checkpoint"]).mode, Mode::ForgetCheckpoint);
        assert_eq!(
            plan(&["--forget-checkpoint", "--json"]).mode,
            Mode::ForgetCheckpoint
        );
        assert!(err(&["-apply", "-forget-checkpoint"]).contains("exactly one"));
        assert!(err(&["-forget-checkpoint", "-limit=3"]).contains("do not apply"));
        let id = "6f1d3c2e-8b1a-4c55-9e1b-1d2c3b4a5f60";
        assert!(err(&["-forget-checkpoint", &format!("-workspace={id}")]).contains("do not apply"));
        assert!(err(&["-forget-checkpoint", "-restart"]).contains("-restart"));
        assert!(err(&["-forget-checkpoint", "-all"]).contains("-verify"));
    }

    #[test]
    fn embed_is_an_apply_flag() {
        assert!(plan(&["-apply", "-embed"]).embed);
        assert!(plan(&["--apply", "--embed", "-restart"]).embed);
        assert!(!plan(&["-apply"]).embed);
        assert!(err(&["-verify", "-embed"]).contains("-embed only applies to -apply"));
        assert!(err(&["-dry-run", "-embed"]).contains("-apply"));
        assert!(err(&["-apply", "-embed=yes"]).contains("takes no value"));
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(["--help"]), Ok(Parsed::Help));
        assert_eq!(parse(["-apply", "-h"]), Ok(Parsed::Help));
    }
}
