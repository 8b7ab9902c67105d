//! `memory-bench`: see the crate documentation and `memory-bench --help`.

use anyhow::Result;
use clap::Parser;
use memory_bench::options::{redact_url, Options};
use memory_bench::report::{render_markdown, render_table};
use memory_bench::run::{self, Outcome};
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match Options::try_parse() {
        Ok(o) => o,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let plan = match options.into_plan() {
        Ok(p) => p,
        Err(message) => {
            eprintln!("memory-bench: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memory-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_plan(plan)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memory-bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run_plan(plan: memory_bench::options::Plan) -> Result<ExitCode> {
    if plan.quality || plan.embedding {
        memory_bench::quality::run_sections(&plan).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if plan.build && plan.bin_dir.is_none() {
        run::build_binaries()?;
    }
    let bins = run::locate_binaries(plan.bin_dir.as_deref())?;
    let command = std::env::args()
        .map(|a| {
            // Never echo a URL with a password.
            url::Url::parse(&a)
                .ok()
                .filter(|u| u.password().is_some())
                .map_or(a, |u| redact_url(&u))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let json = plan.json;
    let markdown = plan.markdown;
    let quick = plan.quick;
    let fail_on_miss = plan.fail_on_miss;
    let outcome = run::run(plan, bins, command).await?;
    print_outcome(&outcome, json, markdown)?;
    if !outcome.failures.is_empty() {
        return Ok(ExitCode::from(1));
    }
    if fail_on_miss && !quick && !outcome.misses().is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_outcome(outcome: &Outcome, json: bool, markdown: bool) -> Result<()> {
    let mut text = String::new();
    text.push_str(&format!("\nmemory-bench: {}\n", outcome.command));
    text.push_str(&format!("machine: {}\n", outcome.machine.summary()));
    if outcome.quick {
        text.push_str("quick mode: sizes are small; speed targets are shown, not enforced\n");
    }
    text.push('\n');
    text.push_str(&render_table(&outcome.figures));
    text.push('\n');
    for note in &outcome.notes {
        text.push_str(&format!("- {note}\n"));
    }
    for figure in &outcome.figures {
        if let Some(note) = &figure.note {
            text.push_str(&format!("- {note}\n"));
        }
    }
    text.push_str(&format!(
        "- total run time {:.0} s\n",
        outcome.total_seconds
    ));
    for failure in &outcome.failures {
        text.push_str(&format!("FAILED: {failure}\n"));
    }
    if markdown {
        text.push('\n');
        text.push_str(&render_markdown(&outcome.figures));
    }
    if json {
        eprint!("{text}");
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        print!("{text}");
    }
    Ok(())
}
