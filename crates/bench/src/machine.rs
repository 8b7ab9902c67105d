//! What the benchmark ran on: cores, memory, CPU model, kernel, date.

use serde::Serialize;

/// Facts about the machine, printed with every report.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub cpu: String,
    pub kernel: String,
    pub date: String,
    pub postgres: String,
}

impl Machine {
    /// Reads the machine's facts from `/proc`; `postgres` is the server's version string.
    pub fn describe(postgres: String) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: crate::child::parse_kib_field(&meminfo, "MemTotal:").unwrap_or(0),
            cpu: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_string(), |s| s.trim().to_string()),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            postgres,
        }
    }

    /// One line for the report header.
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB memory, Linux {}, {}; {}",
            self.cores,
            self.cpu,
            self.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
            self.kernel,
            self.postgres,
            self.date
        )
    }
}
