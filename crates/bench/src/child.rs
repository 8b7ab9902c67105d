//! Child processes whose peak resident memory is measured.
//!
//! The plugin and the backfill run as child processes of their release
//! binaries so that their memory is theirs alone. Peak memory comes from the
//! kernel: `VmHWM` in `/proc/<pid>/status` while the child runs and
//! `ru_maxrss` from `wait4` when it is reaped; the larger is reported.
//! A [`MeasuredChild`] that is dropped before it was reaped is killed, so an
//! error anywhere in the benchmark leaves no process behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a reaped child ended.
#[derive(Debug, Clone)]
pub struct ChildExit {
    /// Exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// Wall time from spawn to reaping.
    pub elapsed: Duration,
    /// Peak resident set size in bytes.
    pub peak_rss_bytes: u64,
}

impl ChildExit {
    /// True when the child exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit 1" or "signal 9", for messages.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown status".into(),
        }
    }
}

/// A running child process with its output captured in files.
#[derive(Debug)]
pub struct MeasuredChild {
    pid: libc::pid_t,
    label: String,
    started: Instant,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// Largest `VmHWM` seen while it ran, in bytes.
    sampled_peak: u64,
    reaped: bool,
}

impl MeasuredChild {
    /// Starts `program` with `args` and extra `env`, writing its stdout and
    /// stderr to `<log_dir>/<label>.stdout|stderr`.
    ///
    /// # Errors
    ///
    /// When the log files cannot be created or the program cannot start.
    pub fn spawn(
        label: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> std::io::Result<MeasuredChild> {
        let stdout_path = log_dir.join(format!("{label}.stdout"));
        let stderr_path = log_dir.join(format!("{label}.stderr"));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?);
        for (key, value) in env {
            cmd.env(key, value);
        }
        // If the benchmark itself is killed outright, take the child along
        // rather than leave a server running.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn()?;
        let pid = child.id() as libc::pid_t;
        // The child is reaped with wait4 below, which std's Child does not
        // know about; dropping the handle neither waits nor kills.
        drop(child);
        Ok(MeasuredChild {
            pid,
            label: label.to_string(),
            started,
            stdout_path,
            stderr_path,
            sampled_peak: 0,
            reaped: false,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Name used in messages and log file names.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Reads `VmHWM` now and keeps the largest value seen.
    pub fn sample_peak(&mut self) -> u64 {
        if let Some(hwm) = read_vm_hwm(self.pid) {
            self.sampled_peak = self.sampled_peak.max(hwm);
        }
        self.sampled_peak
    }

    /// Reaps the child without blocking if it has exited.
    pub fn try_reap(&mut self) -> Option<ChildExit> {
        if self.reaped {
            return None;
        }
        self.sample_peak();
        let (ret, status, usage) = wait4(self.pid, libc::WNOHANG);
        if ret == self.pid {
            self.reaped = true;
            return Some(self.exit_from(status, usage));
        }
        None
    }

    /// Waits until the child exits, sampling its memory meanwhile; kills it
    /// after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> ChildExit {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(20);
        loop {
            if let Some(exit) = self.try_reap() {
                return exit;
            }
            if Instant::now() >= deadline {
                return self.kill();
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(200));
        }
    }

    /// Asks the child to stop (SIGTERM) and waits up to `grace` before killing it.
    pub async fn stop(&mut self, grace: Duration) -> ChildExit {
        self.sample_peak();
        if !self.reaped {
            // SAFETY: plain syscall on a pid this process spawned and has not reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGTERM);
            }
        }
        self.wait(grace).await
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> ChildExit {
        self.sample_peak();
        // SAFETY: the pid is ours and not yet reaped, so it cannot name another process.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        let (_, status, usage) = wait4(self.pid, 0);
        self.reaped = true;
        self.exit_from(status, usage)
    }

    /// The last `max_bytes` of the child's stderr, for error messages.
    pub fn stderr_tail(&self, max_bytes: usize) -> String {
        tail_of(&self.stderr_path, max_bytes)
    }

    /// The child's whole stdout.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    fn exit_from(&self, status: libc::c_int, usage: libc::rusage) -> ChildExit {
        // ru_maxrss is in KiB on Linux.
        let reaped_peak = (usage.ru_maxrss.max(0) as u64) * 1024;
        let (code, signal) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None)
        } else if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)))
        } else {
            (None, None)
        };
        ChildExit {
            code,
            signal,
            elapsed: self.started.elapsed(),
            peak_rss_bytes: reaped_peak.max(self.sampled_peak),
        }
    }
}

impl Drop for MeasuredChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
    }
}

fn wait4(pid: libc::pid_t, flags: libc::c_int) -> (libc::pid_t, libc::c_int, libc::rusage) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: the pointers are to live locals; pid is our own child.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if ret == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return (ret, status, usage);
    }
}

/// `VmHWM` (peak resident set) of a live process, in bytes.
pub fn read_vm_hwm(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib_field(&status, "VmHWM:")
}

/// Parses a `Name:   1234 kB` line of a `/proc` status file into bytes.
pub fn parse_kib_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn tail_of(path: &Path, max_bytes: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max_bytes);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_of_proc_status_parse_to_bytes() {
        let text = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t    1536 kB\n";
        assert_eq!(parse_kib_field(text, "VmHWM:"), Some(1536 * 1024));
        assert_eq!(parse_kib_field(text, "VmRSS:"), None);
    }

    #[tokio::test]
    async fn a_child_that_allocates_reports_at_least_that_peak() {
        let dir = std::env::temp_dir();
        // Python-free: `head -c` into a shell variable would not hold it in
        // memory, so let `sort` buffer 48 MiB of input.
        let mut child = MeasuredChild::spawn(
            "bench-child-test",
            Path::new("/bin/sh"),
            &[
                "-c",
                "head -c 50331648 /dev/zero | tr '\\0' 'a' | sort -S 64M > /dev/null",
            ],
            &[],
            &dir,
        )
        .unwrap();
        let exit = child.wait(Duration::from_secs(60)).await;
        assert!(exit.success(), "{}", exit.describe());
        // sort holds the whole 48 MiB line; wait4 reports the largest of the
        // child and the descendants it reaped.
        assert!(
            exit.peak_rss_bytes >= 40 * 1024 * 1024,
            "peak {} bytes",
            exit.peak_rss_bytes
        );
    }

    #[tokio::test]
    async fn stopping_a_running_child_reaps_it_with_its_signal() {
        let dir = std::env::temp_dir();
        let mut child = MeasuredChild::spawn(
            "bench-sleep-test",
            Path::new("/bin/sleep"),
            &["30"],
            &[],
            &dir,
        )
        .unwrap();
        let exit = child.stop(Duration::from_secs(5)).await;
        assert_eq!(exit.signal, Some(libc::SIGTERM), "{}", exit.describe());
        assert!(exit.elapsed < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn exit_codes_are_reported() {
        let dir = std::env::temp_dir();
        let mut child = MeasuredChild::spawn(
            "bench-exit-test",
            Path::new("/bin/sh"),
            &["-c", "echo oops >&2; exit 3"],
            &[],
            &dir,
        )
        .unwrap();
        let exit = child.wait(Duration::from_secs(10)).await;
        assert_eq!(exit.code, Some(3));
        assert_eq!(child.stderr_tail(100), "oops");
    }
}
