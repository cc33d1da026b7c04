//! The lab: boot a pinned kernel in QEMU with ivshmem devices bound to vfio-pci,
//! run a shell script in it, and collect what it wrote.
//!
//! ```ignore
//! let lab = Lab::prepare("6.12")?;
//! let outcome = lab.run(&RunOpts { script: Some("vfio-trace check".into()), ..RunOpts::default() })?;
//! // outcome.status: the script's exit status; outcome.out_dir: the guest's /mnt/host/out
//! ```

mod qemu;

use std::{
    fs,
    io::{self, Read as _, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{self, Child, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, guest, initramfs, kernels, paths};

pub const MAX_DEVICES: u8 = 4;
/// vCPUs a lab guest may have (QEMU's q35 takes far more; this keeps typos out).
pub const MAX_SMP: u8 = 64;
/// How long a guest asked to stop has to power off before QEMU is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the console does while the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// Copied to the terminal (and always to out/console.log).
    Echo,
    /// Only to out/console.log.
    Quiet,
    /// Echoed, and the terminal's input goes to the guest's serial port.
    Interactive,
}

pub struct RunOpts {
    /// ivshmem devices, each bound to vfio-pci in the guest.
    pub devices: u8,
    /// vCPUs. One by default: under TCG a second vCPU changes what a fault costs
    /// (IPIs, a collector on another CPU), so it is asked for, never assumed.
    pub smp: u8,
    pub memory_mb: u32,
    /// QEMU is killed after this long; None waits forever.
    pub timeout: Option<Duration>,
    /// Shell run in the guest as /mnt/host/run.sh, in /mnt/host/out, with
    /// vfio-trace on PATH. None gives an interactive shell instead.
    pub script: Option<String>,
    pub console: Console,
    /// A host port on 127.0.0.1 forwarded to a guest port, through QEMU
    /// user-mode networking (the guest is 10.0.2.15). None, the default,
    /// gives the guest no network device at all.
    pub forward: Option<Forward>,
    /// Once set (by a signal handler, say), the lab creates /mnt/host/stop for
    /// the script to notice and power off; QEMU is killed if it still runs
    /// `STOP_GRACE` later. With a flag, QEMU runs in its own process group, so
    /// a Ctrl-C at the terminal reaches the xtask and not QEMU.
    pub stop: Option<Arc<AtomicBool>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub host_port: u16,
    pub guest_port: u16,
}

impl Default for RunOpts {
    fn default() -> Self {
        Self {
            devices: 1,
            smp: 1,
            memory_mb: 2048,
            timeout: Some(Duration::from_mins(10)),
            script: None,
            console: Console::Echo,
            forward: None,
            stop: None,
        }
    }
}

impl RunOpts {
    /// `script` run in one guest, killed after `timeout_secs`; the rest default.
    pub fn scripted(script: &str, timeout_secs: u64) -> Self {
        Self {
            timeout: Some(Duration::from_secs(timeout_secs)),
            script: Some(script.to_owned()),
            ..Self::default()
        }
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    /// The script's exit status (0 for an interactive shell that powered off).
    pub status: i32,
    /// Whatever the guest wrote to /mnt/host/out/, plus console.log and guest.log.
    pub out_dir: PathBuf,
    /// From QEMU start to exit.
    pub elapsed: Duration,
    /// Whether the guest ran under KVM (else TCG): timings differ by far.
    pub kvm: bool,
}

/// A kernel and initramfs ready to boot, with its share directory. Holds the
/// kernel's lab directory locked: concurrent runs would share one run.sh and out/.
pub struct Lab {
    pub kernel: kernels::Kernel,
    pub initrd: PathBuf,
    /// target/lab/<key>/share, the guest's /mnt/host.
    pub share: PathBuf,
    _lock: fs::File,
}

impl Lab {
    /// Unpacks the kernel if needed, builds the initramfs if its inputs changed,
    /// and puts the (once-per-invocation) guest build of vfio-trace in the share.
    pub fn prepare(kernel_key: &str) -> Result<Self> {
        let kernel = kernels::prepare(kernel_key)?;
        let dir = paths::lab_dir(kernel.key);
        cmd::mkdir(&dir)?;
        let lock = cmd::lock(
            &dir.join("lock"),
            &format!("a run on kernel {}", kernel.key),
        )?;
        let initrd = initramfs::ensure(&kernel, &dir)
            .with_context(|| format!("initramfs for kernel {}", kernel.key))?;
        let share = dir.join("share");
        let bin = share.join("bin");
        cmd::mkdir(&bin)?;
        let binary = guest::binary()?;
        fs::copy(&binary, bin.join("vfio-trace"))
            .with_context(|| format!("copying {} into the share", binary.display()))?;
        Ok(Self {
            kernel,
            initrd,
            share,
            _lock: lock,
        })
    }

    pub fn run(&self, opts: &RunOpts) -> Result<RunOutcome> {
        if !(1..=MAX_DEVICES).contains(&opts.devices) {
            bail!("devices must be 1 to {MAX_DEVICES}, not {}", opts.devices);
        }
        if !(1..=MAX_SMP).contains(&opts.smp) {
            bail!("smp must be 1 to {MAX_SMP}, not {}", opts.smp);
        }
        let out_dir = self.share.join("out");
        cmd::remove(&out_dir)?;
        cmd::mkdir(&out_dir)?;
        let stop_file = self.share.join("stop");
        cmd::remove(&stop_file)?;
        let run_sh = self.share.join("run.sh");
        cmd::remove(&run_sh)?;
        if let Some(script) = &opts.script {
            fs::write(&run_sh, script).context("writing run.sh")?;
        }

        remove_stale_shm();
        let shm = ShmFiles(
            (0..opts.devices)
                .map(|i| PathBuf::from(format!("/dev/shm/vfio-trace-{}-{i}", process::id())))
                .collect(),
        );
        let kvm = qemu::kvm_usable();
        let mut command = qemu::command(&qemu::QemuConfig {
            vmlinuz: &self.kernel.vmlinuz,
            initrd: &self.initrd,
            share: &self.share,
            memory_mb: opts.memory_mb,
            smp: opts.smp,
            kvm,
            cmdline_extra: &init_flags(opts),
            shm_files: &shm.0,
            forward: opts.forward,
        });
        if opts.stop.is_some() {
            command.process_group(0);
        }
        command
            .stdout(Stdio::piped())
            .stdin(if opts.console == Console::Interactive {
                Stdio::inherit()
            } else {
                Stdio::null()
            });

        let start = Instant::now();
        let mut child = command.spawn().context("starting qemu-system-x86_64")?;
        let console = stream_console(&mut child, opts.console, &out_dir.join("console.log"))?;
        let stop = opts.stop.as_deref().map(|flag| (flag, stop_file.as_path()));
        let exit = wait(&mut child, opts.timeout, stop)?;
        let elapsed = start.elapsed();
        // The pipe closes when QEMU exits, so this ends promptly.
        if console.join().is_err() {
            eprintln!("lab: console copier panicked");
        }
        drop(shm);

        let status_file = out_dir.join("status");
        let what = match exit {
            Exit::TimedOut => format!("timed out after {}s", elapsed.as_secs()),
            Exit::Killed => format!(
                "killed {}s after it was asked to stop",
                STOP_GRACE.as_secs()
            ),
            Exit::Status(s) => format!("QEMU {s}"),
        };
        match fs::read_to_string(&status_file) {
            Ok(text) => {
                let status = text.trim().parse().with_context(|| {
                    format!(
                        "guest status {:?} in {}",
                        text.trim(),
                        status_file.display()
                    )
                })?;
                Ok(RunOutcome {
                    status,
                    out_dir,
                    elapsed,
                    kvm,
                })
            }
            Err(_) if opts.script.is_none() && matches!(exit, Exit::Status(s) if s.success()) => {
                Ok(RunOutcome {
                    status: 0,
                    out_dir,
                    elapsed,
                    kvm,
                })
            }
            Err(_) => bail!(
                "kernel {}: the guest wrote no status ({what}{}); console: {}",
                self.kernel.key,
                if kvm { ", KVM" } else { ", TCG" },
                out_dir.join("console.log").display()
            ),
        }
    }
}

/// Kernel command-line words for guest/init.sh.
fn init_flags(opts: &RunOpts) -> String {
    let mut flags = String::new();
    if opts.script.is_none() {
        flags.push_str(" vfio_trace.shell");
    }
    if opts.forward.is_some() {
        flags.push_str(" vfio_trace.net");
    }
    flags
}

enum Exit {
    Status(process::ExitStatus),
    TimedOut,
    /// Asked to stop, it was still running `STOP_GRACE` later.
    Killed,
}

/// Waits for QEMU to exit; `stop` is the flag that asks the guest to power
/// off and the file that tells it so.
fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
    stop: Option<(&AtomicBool, &Path)>,
) -> Result<Exit> {
    let start = Instant::now();
    let mut stopping: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Exit::Status(status));
        }
        let timed_out = timeout.is_some_and(|t| start.elapsed() > t);
        if let Some((flag, file)) = stop
            && stopping.is_none()
            && flag.load(Ordering::Relaxed)
        {
            fs::write(file, "").with_context(|| format!("creating {}", file.display()))?;
            stopping = Some(Instant::now());
        }
        let overdue = stopping.is_some_and(|s| s.elapsed() > STOP_GRACE);
        if timed_out || overdue {
            child.kill().context("killing QEMU")?;
            child.wait().context("reaping QEMU")?;
            return Ok(if timed_out {
                Exit::TimedOut
            } else {
                Exit::Killed
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Copies QEMU's serial output to console.log, and to the terminal unless quiet.
fn stream_console(child: &mut Child, mode: Console, log: &Path) -> Result<thread::JoinHandle<()>> {
    let mut from = child.stdout.take().context("QEMU stdout")?;
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Ok(thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = io::stdout();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            // A full disk or closed terminal must not stall QEMU: keep draining.
            let _ = file.write_all(&buf[..n]);
            if mode != Console::Quiet {
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
            }
        }
    }))
}

/// ivshmem backing files, removed when dropped.
struct ShmFiles(Vec<PathBuf>);

impl Drop for ShmFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = fs::remove_file(f);
        }
    }
}

/// Backing files left by an xtask that was killed (its pid is gone).
fn remove_stale_shm() {
    let Ok(entries) = fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("vfio-trace-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !PathBuf::from("/proc").join(pid).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}
