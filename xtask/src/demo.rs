//! `cargo xtask demo`: vfio-trace at work in a 6.12 guest with one device.

use anyhow::Result;

use crate::{
    lab::{Lab, RunOpts},
    setup,
};

const KERNEL: &str = "6.12";

/// The guest's init binds the ivshmem device to vfio-pci; this finds its address.
const PRELUDE: &str = "BDF=$(basename /sys/bus/pci/drivers/vfio-pci/0000:*)\n";

/// Run in the guest in order, echoed first; the demo stops at the first failure.
/// The workload: 4 KiB and 2 MiB aligned touches, a decode-toggle refault, a reset.
const STEPS: &[&str] = &[
    "vfio-trace check",
    r#"vfio-trace exercise --device "$BDF" touch:4k:4m touch:4k:4m:2m refault:4k:4m:2m reset"#,
];

pub fn run() -> Result<i32> {
    setup::run(&setup::SetupArgs::default_toolchain())?;
    let lab = Lab::prepare(KERNEL)?;
    let steps: String = STEPS
        .iter()
        .map(|step| {
            format!(
                "echo {}\n{step} || exit\n",
                crate::vm::quote(&format!("$ {step}"))
            )
        })
        .collect();
    let outcome = lab.run(&RunOpts {
        script: Some(format!("{PRELUDE}{steps}")),
        ..RunOpts::default()
    })?;
    Ok(outcome.status)
}
