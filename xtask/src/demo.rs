//! `cargo xtask demo`: vfio-trace at work in a 6.12 guest with one device.

use anyhow::Result;

use crate::{
    lab::{Lab, RunOpts},
    setup,
};

const KERNEL: &str = "6.12";

/// Run in the guest in order; the demo stops at the first failure. The exercise
/// step drives the ivshmem device that init bound to vfio-pci.
const STEPS: &[&str] = &["vfio-trace check", "vfio-trace exercise --help"];

pub fn run() -> Result<i32> {
    setup::run(&setup::SetupArgs::default_toolchain())?;
    let lab = Lab::prepare(KERNEL)?;
    let script: String = STEPS
        .iter()
        .map(|step| format!("echo '$ {step}'\n{step} || exit\n"))
        .collect();
    let outcome = lab.run(&RunOpts {
        script: Some(script),
        ..RunOpts::default()
    })?;
    Ok(outcome.status)
}
