//! `memory-migrate`: parses the command line, runs the plan, prints the
//! report and exits 0 (clean), 1 (differences or row errors) or 2 (usage or
//! configuration).

use memory_migrate::cli::{self, Parsed};
use memory_migrate::run;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match go() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("memory-migrate: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn go() -> anyhow::Result<u8> {
    let plan = match cli::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return Ok(0);
        }
        Ok(Parsed::Run(plan)) => plan,
        Err(e) => {
            eprintln!("memory-migrate: error: {e} (see -help)");
            return Ok(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match runtime.block_on(run::run(&plan, !plan.json)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memory-migrate: error: {e}");
            return Ok(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    if plan.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{report}")?;
    }
    stdout.flush()?;
    Ok(report.exit_code())
}
