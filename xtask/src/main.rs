//! Development tasks for vfio-trace: `cargo xtask <setup|vm|test|demo|bench|bench-report>`.

mod apt;
mod bench;
mod client;
mod cmd;
mod debtree;
mod demo;
mod generations;
mod guest;
mod host_qemu;
mod initramfs;
mod kernels;
mod lab;
mod paths;
mod promtool;
mod setup;
mod suite;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand, error::ErrorKind};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Build, lab and test automation for vfio-trace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks: packages, eBPF toolchain, bpf-linker, kernels.
    Setup(setup::SetupArgs),
    /// Boot a lab kernel in QEMU and run a command (or a shell) in it.
    Vm(vm::VmArgs),
    /// Formatting, lints, unit tests and the VM suite on every lab kernel.
    Test(test::TestArgs),
    /// Show vfio-trace at work in a 6.12 guest (--serve: its exporter, until Ctrl-C).
    Demo(demo::DemoArgs),
    /// What tracing costs a VFIO workload: untraced, tracefs, vfio-trace, bpftrace.
    Bench(bench::BenchArgs),
    /// The bench's workloads recorded on every lab kernel: one report comparing generations.
    BenchReport(generations::GenerationsArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are not errors; a bad argument is one line.
        Err(err)
            if !err.use_stderr()
                || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            err.exit()
        }
        Err(err) => {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("xtask: {}", line.strip_prefix("error: ").unwrap_or(line));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args).map(|()| 0),
        Command::Vm(args) => vm::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchReport(args) => generations::run(&args),
    };
    match result {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
