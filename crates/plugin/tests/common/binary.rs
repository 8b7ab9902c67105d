//! The real `memory-plugin` binary started with a clean environment, its
//! standard output and error collected line by line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_memory-plugin");

/// A started binary; killed when dropped if it is still running.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts the binary in the temporary directory with only `PATH` and
    /// `envs` set.
    pub fn start(envs: &[(&str, &str)]) -> Running {
        Self::start_in(&std::env::temp_dir(), envs)
    }

    /// As [`Running::start`], in `dir`.
    pub fn start_in(dir: &std::path::Path, envs: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the binary starts");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no line with {needle:?}; output so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// Waits for the JSON "listening on" log line (the binary runs with
    /// `MEMORY_PLUGIN_LOG_FORMAT=json`) and returns the address it names.
    pub fn wait_listening(&mut self) -> String {
        let line = self.wait_for_line("listening on");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        event["addr"].as_str().expect("addr field").to_string()
    }

    /// Waits for the process to exit and returns its code and full output.
    pub fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the binary did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        // Collect what is left once the pipes close.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen).join("\n"))
    }

    /// Stops the process with SIGTERM, asserts it exits 0, and returns its
    /// full output.
    pub fn terminate(self) -> String {
        self.signal("-TERM");
        let (code, output) = self.wait_exit();
        assert_eq!(code, Some(0), "exit code after SIGTERM; output:\n{output}");
        output
    }

    /// Sends `signal` (`-TERM`, `-KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
