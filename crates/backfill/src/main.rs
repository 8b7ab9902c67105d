//! `memory-backfill`: the operator's migration tool. Parses the command line,
//! runs the plan (see the library), prints the report and exits 0, 1 or 2.

use memory_backfill::cli::{self, Parsed};
use memory_backfill::runner;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("memory-backfill: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<u8> {
    let plan = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return Ok(0);
        }
        Ok(Parsed::Run(plan)) => plan,
        Err(e) => {
            eprintln!("memory-backfill: {e}");
            eprintln!("run memory-backfill -help for usage");
            return Ok(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let show_progress = !plan.json;
    let report = match runtime.block_on(runner::run(&plan, show_progress)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memory-backfill: {e}");
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
    let _ = std::io::stderr().is_terminal();
    Ok(report.exit_code())
}
