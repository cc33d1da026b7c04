//! vfio-trace: what mapping a VFIO device's BARs really costs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vfio-trace", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Say what this machine can trace, and why not.
    Check(vfio_trace::check::CheckArgs),
    /// Drive a vfio-pci device's BAR with a known workload and report what was done.
    Exercise(vfio_trace::exercise::ExerciseArgs),
    /// Trace BAR faults while a command runs (or for a duration), then write JSON.
    Record(vfio_trace::record::RecordArgs),
    /// Summarise a recording for people: the huge-fault verdict, a comparison
    /// with a baseline, bounds for CI (--expect) and SVG charts (--charts).
    Report(vfio_trace::report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => vfio_trace::check::run(&args),
        Command::Exercise(args) => vfio_trace::exercise::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Report(args) => vfio_trace::report::run(&args),
        Command::Record(args) => vfio_trace::record::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vfio-trace: {err:#}");
            ExitCode::FAILURE
        }
    }
}
