//! vfio-trace: what mapping a VFIO device's BARs really costs.

#![expect(unused_crate_dependencies, reason = "the library uses them")]

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
    /// Trace and serve Prometheus metrics until SIGTERM or Ctrl-C.
    Serve(vfio_trace::serve::ServeArgs),
    /// The live view of BAR faults per device, or a recording played back (--replay).
    Top(vfio_trace::top::TopArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => vfio_trace::check::run(&args),
        Command::Exercise(args) => vfio_trace::exercise::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Report(args) => vfio_trace::report::run(&args),
        Command::Record(args) => vfio_trace::record::run(&args),
        Command::Serve(args) => vfio_trace::serve::run(&args),
        Command::Top(args) => vfio_trace::top::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vfio-trace: {err:#}");
            ExitCode::FAILURE
        }
    }
}
