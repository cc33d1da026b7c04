//! The VFIO workload generator: opens a vfio-pci device as a real user would
//! (group/container, type1v2), mmaps one BAR and runs phases over it, counting
//! exactly what it touches so a tracer's figures can be checked against it.

mod contend;
mod error;
mod layout;
mod mapping;
mod phases;
mod report;
mod spec;
mod vfio;

use vfio_bindings::bindings::vfio::{VFIO_PCI_BAR5_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP};

use crate::device::{Bdf, Sysfs};
pub use error::ExerciseError;
use phases::Runner;
use report::{Report, Totals};
use spec::PhaseSpec;
use vfio::{Device, Region};

#[derive(clap::Args, Debug)]
#[command(after_help = "PHASE is one of:\n  \
    touch:STRIDE:SIZE[:ALIGN[:MAP]]\n                               \
    map MAP bytes of the BAR (default SIZE) at an address aligned to\n                               \
    exactly ALIGN, read one u32 every STRIDE bytes of the first SIZE, unmap\n  \
    refault:STRIDE:SIZE[:ALIGN[:MAP]]\n                               \
    the same, then clear and set memory decode (a zap), read again\n  \
    dma-map:SIZE[:ALIGN[:MAP]]   map as touch does, VFIO_IOMMU_MAP_DMA the first SIZE bytes (type1\n                               \
    faults every page in to pin it), VFIO_IOMMU_UNMAP_DMA, unmap\n  \
    decode-off | decode-on       clear or set PCI_COMMAND's memory bit\n  \
    sigbus:SIZE                  with decode off, map SIZE bytes and let a child read the first word\n  \
    reset                        VFIO_DEVICE_RESET\n  \
    contend:THREADS:RESETS:SIZE  THREADS threads fault their own SIZE mapping while the device\n                               \
    is reset RESETS times\n  \
    sleep:MS                     wait, e.g. for a tracer to attach\n\
    Sizes take k, m or g suffixes (powers of 1024).")]
pub struct ExerciseArgs {
    /// The vfio-pci device: 0000:01:00.0, 01:00.0 or 1:00.0.
    #[arg(long, value_name = "BDF")]
    device: String,
    /// BAR to map [default: the largest mmappable BAR].
    #[arg(long, value_name = "N")]
    bar: Option<u32>,
    /// Print one JSON object on stdout instead of lines of text.
    #[arg(long)]
    json: bool,
    /// Phases, run in order.
    #[arg(value_name = "PHASE", required = true)]
    phases: Vec<String>,
}

pub fn run(args: &ExerciseArgs) -> anyhow::Result<()> {
    run_with_sysfs(args, &Sysfs::default())
}

/// Everything that can be checked before touching the device: phase specs, the
/// address, the driver and the IOMMU group.
fn preflight(
    args: &ExerciseArgs,
    sysfs: &Sysfs,
) -> Result<(Vec<PhaseSpec>, Bdf, u32), ExerciseError> {
    let phases = args
        .phases
        .iter()
        .map(|p| PhaseSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let bdf = Bdf::parse(&args.device)?;
    sysfs.vfio_device(bdf)?;
    let group = sysfs.iommu_group(bdf)?;
    Ok((phases, bdf, group))
}

fn run_with_sysfs(args: &ExerciseArgs, sysfs: &Sysfs) -> anyhow::Result<()> {
    let (phases, bdf, group) = preflight(args, sysfs)?;
    let device = Device::open(bdf, group)?;
    let bars = (0..=VFIO_PCI_BAR5_REGION_INDEX)
        .map(|i| device.region(i))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = choose_bar(&bars, args.bar)?;
    check_sizes(&phases, &bar)?;

    let mut report = Report {
        device: bdf,
        bar: bar.index,
        bar_size: bar.size,
        pid: std::process::id(),
        phases: Vec::new(),
        totals: Totals::default(),
        error: None,
    };
    if !args.json {
        println!("{}", report.header());
    }
    let mut runner = Runner {
        device: &device,
        bar,
        totals: Totals::default(),
    };
    let mut failure = None;
    for spec in &phases {
        match runner.run(spec) {
            Ok(done) => {
                if !args.json {
                    println!("{}", done.line());
                }
                report.phases.push(done);
            }
            Err(e) => {
                failure = Some(format!("{spec}: {e}"));
                break;
            }
        }
    }
    report.totals = runner.totals;
    report.error.clone_from(&failure);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.footer());
    }
    match failure {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// The requested BAR if it can be mmapped, else the largest mmappable one.
fn choose_bar(bars: &[Region], requested: Option<u32>) -> Result<Region, ExerciseError> {
    let mappable = |r: &Region| r.flags & VFIO_REGION_INFO_FLAG_MMAP != 0 && r.size > 0;
    match requested {
        Some(n) => {
            let bar = *bars
                .iter()
                .find(|r| r.index == n)
                .ok_or(ExerciseError::NoSuchBar(n))?;
            if bar.size == 0 {
                Err(ExerciseError::EmptyBar(n))
            } else if !mappable(&bar) {
                Err(ExerciseError::NotMmappable(n))
            } else {
                Ok(bar)
            }
        }
        None => bars
            .iter()
            .filter(|r| mappable(r))
            .max_by_key(|r| r.size)
            .copied()
            .ok_or(ExerciseError::NoMmappableBar),
    }
}

/// Refuses, before anything runs, a phase that would map more than the BAR holds.
fn check_sizes(phases: &[PhaseSpec], bar: &Region) -> Result<(), ExerciseError> {
    for p in phases {
        if let Some(size) = p.phase.mapped_size()
            && size > bar.size
        {
            return Err(ExerciseError::BeyondBar {
                spec: p.text.clone(),
                size,
                bar: bar.index,
                bar_size: bar.size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::tests::{IVSHMEM_RESOURCE, fake_sysfs};

    const MMAP: u32 = VFIO_REGION_INFO_FLAG_MMAP;

    fn args(device: &str, phases: &[&str]) -> ExerciseArgs {
        ExerciseArgs {
            device: device.into(),
            bar: None,
            json: false,
            phases: phases.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn region(index: u32, flags: u32, size: u64) -> Region {
        Region {
            index,
            flags,
            size,
            offset: u64::from(index) << 40,
        }
    }

    fn ivshmem() -> Vec<Region> {
        vec![
            region(0, 3 | MMAP, 256),
            region(1, 3 | MMAP, 4096),
            region(2, 3 | MMAP, 1 << 30),
            region(3, 0, 0),
            region(4, 3, 1 << 20),
            region(5, 0, 0),
        ]
    }

    #[test]
    fn bar_choice() {
        let bars = ivshmem();
        assert_eq!(choose_bar(&bars, None).expect("default").index, 2);
        assert_eq!(choose_bar(&bars, Some(1)).expect("bar 1").index, 1);
        let msg = |n| choose_bar(&bars, Some(n)).expect_err("bad bar").to_string();
        assert_eq!(msg(9), "BAR 9 does not exist: a PCI device has BARs 0 to 5");
        assert_eq!(msg(3), "BAR 3 is not implemented by this device");
        assert_eq!(
            msg(4),
            "BAR 4 cannot be mmapped (no VFIO_REGION_INFO_FLAG_MMAP)"
        );
        let none = vec![region(0, 3, 4096)];
        assert!(matches!(
            choose_bar(&none, None),
            Err(ExerciseError::NoMmappableBar)
        ));
    }

    #[test]
    fn sizes_against_the_bar() {
        let bar = region(2, MMAP, 1 << 30);
        let specs = |list: &[&str]| {
            list.iter()
                .map(|s| PhaseSpec::parse(s).expect("valid"))
                .collect::<Vec<_>>()
        };
        assert!(check_sizes(&specs(&["touch:2m:1g:1g", "sigbus:4k", "reset"]), &bar).is_ok());
        let err = check_sizes(&specs(&["reset", "refault:4k:2g"]), &bar).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "refault:4k:2g: size 2147483648 is beyond BAR2's 1073741824 bytes"
        );
        let err = check_sizes(&specs(&["dma-map:64m:2m:2g"]), &bar).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "dma-map:64m:2m:2g: size 2147483648 is beyond BAR2's 1073741824 bytes"
        );
    }

    #[test]
    fn preflight_checks_specs_then_device() {
        let root = tempfile::tempdir().expect("tempdir");
        let sysfs = Sysfs::new(root.path());
        let err = preflight(&args("0000:01:00.0", &["touch:4k"]), &sysfs).expect_err("spec");
        assert!(err.to_string().starts_with("bad phase 'touch:4k'"), "{err}");
        let err = preflight(&args("01:00.0", &["reset"]), &sysfs).expect_err("device");
        assert_eq!(err.to_string(), "no PCI device 0000:01:00.0");
        let err = preflight(&args("01:00", &["reset"]), &sysfs).expect_err("address");
        assert!(
            err.to_string()
                .starts_with("invalid PCI address \"01:00\": expected")
        );
    }

    #[test]
    fn preflight_takes_every_address_form_record_takes() {
        let root = fake_sysfs("0000:01:00.0", Some("vfio-pci"), IVSHMEM_RESOURCE);
        let sysfs = Sysfs::new(root.path());
        for form in ["0000:01:00.0", "01:00.0", "1:00.0"] {
            let (_, bdf, group) = preflight(&args(form, &["reset"]), &sysfs).expect(form);
            assert_eq!((bdf.to_string().as_str(), group), ("0000:01:00.0", 7));
        }
        let nvme = fake_sysfs("0000:01:00.0", Some("nvme"), IVSHMEM_RESOURCE);
        let err =
            preflight(&args("1:00.0", &["reset"]), &Sysfs::new(nvme.path())).expect_err("not vfio");
        assert_eq!(
            err.to_string(),
            "0000:01:00.0 is bound to nvme, not vfio-pci"
        );
    }
}
