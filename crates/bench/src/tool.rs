//! Outside programs the benchmark runs (`pgbench`, `wrk`): finding them and
//! running them to completion.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// `fixed` when it is a file, else `name` in a directory of `PATH`.
pub fn find(fixed: &Path, name: &str) -> Option<PathBuf> {
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    on_path(name)
}

/// `name` in the first directory of `PATH` that holds it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs `command` (killed if the future is dropped) and returns what it
/// printed on standard output.
///
/// # Errors
///
/// When it cannot start, or exits unsuccessfully (the message ends with the
/// last three lines of its standard error).
pub async fn stdout_of(mut command: tokio::process::Command, binary: &Path) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        let name = binary.file_name().map_or_else(
            || binary.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        bail!("{name} ended with {}: {tail}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}
