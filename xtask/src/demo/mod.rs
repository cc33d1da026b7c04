//! `cargo xtask demo`: vfio-trace at work in a 6.12 guest with one device;
//! `--serve` keeps it working with its exporter reachable from the host;
//! `--client` records real QEMU clients instead of the exercise.

mod client;
mod serve;

use std::fmt::Write as _;

use anyhow::Result;

use crate::{
    client::{Clients, L2},
    lab::{Lab, RunOpts},
    setup,
};

const KERNEL: &str = "6.12";

/// The guest's init binds the ivshmem device to vfio-pci; this finds its address.
const PRELUDE: &str = "BDF=$(basename /sys/bus/pci/drivers/vfio-pci/0000:*)\n";

/// Run in the guest in order, echoed first; the demo stops at the first failure.
/// The workload: a 4 KiB fault storm, 2 MiB and 1 GiB aligned touches, a zap and
/// refault, a reset, and threads faulting through resets; recorded with every
/// event, then written up (markdown with SVG charts beside the JSON, the events
/// as a trace-event file) and summarised with its verdict last.
const STEPS: &[&str] = &[
    "vfio-trace check",
    r#"vfio-trace record -o /mnt/host/out/demo.json --events /mnt/host/out/demo.events.jsonl -- vfio-trace exercise --device "$BDF" touch:4k:64m:4k:1g touch:4k:64m:2m:1g touch:2m:1g:1g refault:4k:4m:4k reset contend:2:5:4m"#,
    "cd /mnt/host/out && vfio-trace report demo.json --format markdown --charts charts > demo.md",
    "vfio-trace report demo.events.jsonl --trace-event demo.trace.json",
    "vfio-trace report /mnt/host/out/demo.json",
];

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the guest running the exercise in a loop, with `vfio-trace serve`
    /// reachable on 127.0.0.1, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// With --serve: the host port forwarded to the guest's exporter.
    #[arg(long, default_value_t = serve::GUEST_PORT, requires = "serve")]
    port: u16,
    /// Record real VFIO clients instead: qemu (7.2, then 10, then compared),
    /// qemu=7.2 or qemu=10.
    #[arg(long, value_name = "CLIENT", conflicts_with = "serve")]
    client: Option<Clients>,
    /// With --client: what the nested VM runs, its BIOS (seconds) or the
    /// lab kernel to its init (minutes under TCG).
    #[arg(long, value_enum, default_value_t, requires = "client")]
    l2: L2,
}

pub fn run(args: &DemoArgs) -> Result<i32> {
    if args.serve {
        return serve::run(args.port);
    }
    setup::run(&setup::SetupArgs::default_toolchain())?;
    let lab = Lab::prepare(KERNEL)?;
    if let Some(Clients(clients)) = &args.client {
        crate::client::stage(clients, &lab.share, args.l2, &lab.kernel.vmlinuz)?;
        let steps = client::steps(clients, args.l2);
        let outcome = lab.run(&RunOpts {
            script: Some(format!("{PRELUDE}{}", echoed(&steps))),
            timeout: Some(client::timeout(clients, args.l2)),
            ..RunOpts::default()
        })?;
        println!("{}", client::summary(clients, &outcome.out_dir));
        return Ok(outcome.status);
    }
    let outcome = lab.run(&RunOpts {
        script: Some(format!("{PRELUDE}{}", echoed(STEPS))),
        ..RunOpts::default()
    })?;
    println!(
        "In {}: the recording (demo.json), its events (demo.events.jsonl, and as a Perfetto \
         trace in demo.trace.json), the report with its verdict (demo.md) and its charts (charts/)",
        outcome.out_dir.display()
    );
    Ok(outcome.status)
}

/// The steps as shell, each echoed first; the first failure ends the script.
fn echoed<S: AsRef<str>>(steps: &[S]) -> String {
    steps.iter().fold(String::new(), |mut s, step| {
        let step = step.as_ref();
        let _ = write!(
            s,
            "echo {}\n{step} || exit\n",
            crate::vm::quote(&format!("$ {step}"))
        );
        s
    })
}
