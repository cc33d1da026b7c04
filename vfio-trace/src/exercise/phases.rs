//! Running each phase against an open device. Totals are counted as each action
//! happens, so a phase that fails halfway still leaves an exact count.

use std::io;
use std::time::{Duration, Instant};

use super::error::ExerciseError;
use super::layout::{alignment, expected_faults};
use super::mapping::BarMapping;
use super::report::{Decode, DmaMap, MapInfo, PhaseReport, Refault, Sigbus, Timed, Totals, Touch};
use super::spec::{GIB, Phase, PhaseSpec, Walk};
use super::vfio::{Device, PCI_COMMAND_MEMORY, Region};

/// Where `dma-map` maps the BAR in the device's address space: 1 GiB aligned,
/// so the IOMMU may use its largest pages, and clear of the x86 MSI window
/// just below 4 GiB.
pub const DMA_IOVA: u64 = 4 * GIB;

fn ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub struct Runner<'a> {
    pub device: &'a Device,
    pub bar: Region,
    pub totals: Totals,
}

impl Runner<'_> {
    pub fn run(&mut self, spec: &PhaseSpec) -> Result<PhaseReport, ExerciseError> {
        let text = spec.text.clone();
        Ok(match spec.phase {
            Phase::Touch(walk) => PhaseReport::Touch(self.touch(text, &walk)?),
            Phase::Refault(walk) => PhaseReport::Refault(self.refault(text, &walk)?),
            Phase::DmaMap(walk) => PhaseReport::DmaMap(self.dma_map(text, &walk)?),
            Phase::DecodeOff => PhaseReport::DecodeOff(self.decode(text, false)?),
            Phase::DecodeOn => PhaseReport::DecodeOn(self.decode(text, true)?),
            Phase::Sigbus { size } => PhaseReport::Sigbus(self.sigbus(text, size)?),
            Phase::Reset => {
                let start = Instant::now();
                self.device.reset()?;
                self.totals.resets += 1;
                PhaseReport::Reset(Timed {
                    spec: text,
                    elapsed_ns: ns(start),
                })
            }
            Phase::Contend {
                threads,
                resets,
                size,
            } => {
                if !self.decode_is_on()? {
                    return Err(ExerciseError::DecodeIsOff);
                }
                let c =
                    super::contend::run(self.device, self.bar.offset, text, threads, resets, size)?;
                self.totals.mmaps += u64::from(threads);
                self.totals.resets += u64::from(resets);
                self.totals.touches += c.touches.iter().sum::<u64>();
                PhaseReport::Contend(c)
            }
            Phase::Sleep { ms } => {
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(ms));
                PhaseReport::Sleep(Timed {
                    spec: text,
                    elapsed_ns: ns(start),
                })
            }
        })
    }

    fn decode_is_on(&self) -> Result<bool, ExerciseError> {
        Ok(self.device.command()? & PCI_COMMAND_MEMORY != 0)
    }

    /// Maps a walk's bytes, refusing while decode is off: the first read would
    /// kill this process with SIGBUS.
    fn map_walk(&mut self, walk: &Walk) -> Result<(BarMapping, MapInfo), ExerciseError> {
        if !self.decode_is_on()? {
            return Err(ExerciseError::DecodeIsOff);
        }
        let map = BarMapping::map(self.device.file(), self.bar.offset, walk.map, walk.align)?;
        self.totals.mmaps += 1;
        let info = MapInfo {
            map_addr: map.addr(),
            map_align: alignment(map.addr()),
            size: walk.map,
            touched: walk.size,
            stride: walk.stride,
            expected: expected_faults(walk, map.addr(), self.bar.size),
        };
        Ok((map, info))
    }

    fn walk(&mut self, map: &BarMapping, walk: &Walk) -> (u64, u64) {
        let start = Instant::now();
        let touches = map.touch(walk.stride, walk.size);
        let elapsed = ns(start);
        self.totals.touches += touches;
        (touches, elapsed)
    }

    fn touch(&mut self, spec: String, walk: &Walk) -> Result<Touch, ExerciseError> {
        let (map, info) = self.map_walk(walk)?;
        let (touches, elapsed_ns) = self.walk(&map, walk);
        map.unmap()?;
        Ok(Touch {
            spec,
            map: info,
            touches,
            elapsed_ns,
        })
    }

    fn refault(&mut self, spec: String, walk: &Walk) -> Result<Refault, ExerciseError> {
        let start = Instant::now();
        let (map, info) = self.map_walk(walk)?;
        let (touches_first, first_ns) = self.walk(&map, walk);
        let zap = Instant::now();
        self.write_decode(false)?;
        self.write_decode(true)?;
        let zap_ns = ns(zap);
        let (touches_second, second_ns) = self.walk(&map, walk);
        map.unmap()?;
        Ok(Refault {
            spec,
            map: info,
            touches_first,
            touches_second,
            decode_toggles: 2,
            first_ns,
            zap_ns,
            second_ns,
            elapsed_ns: ns(start),
        })
    }

    /// Maps the walk's bytes, then DMA-maps the first `walk.size` of them as a
    /// VMM maps a BAR for peer-to-peer DMA: type1 pins each page, and pinning a
    /// BAR page faults it in through `fixup_user_fault`, not a read of ours.
    fn dma_map(&mut self, spec: String, walk: &Walk) -> Result<DmaMap, ExerciseError> {
        let (map, info) = self.map_walk(walk)?;
        let start = Instant::now();
        self.device.map_dma(map.addr(), DMA_IOVA, walk.size)?;
        let map_dma_ns = ns(start);
        self.totals.dma_maps += 1;
        let unmap = Instant::now();
        self.device.unmap_dma(DMA_IOVA, walk.size)?;
        let unmap_dma_ns = ns(unmap);
        map.unmap()?;
        Ok(DmaMap {
            spec,
            map: info,
            dma_size: walk.size,
            iova: DMA_IOVA,
            map_dma_ns,
            unmap_dma_ns,
            elapsed_ns: ns(start),
        })
    }

    /// Read-modify-writes `PCI_COMMAND`'s memory bit and checks it took.
    /// Returns (before, after).
    fn write_decode(&mut self, on: bool) -> Result<(u16, u16), ExerciseError> {
        let before = self.device.command()?;
        let wrote = if on {
            before | PCI_COMMAND_MEMORY
        } else {
            before & !PCI_COMMAND_MEMORY
        };
        self.device.set_command(wrote)?;
        self.totals.decode_toggles += 1;
        if !on {
            self.totals.decode_off += 1;
        }
        let after = self.device.command()?;
        if (after & PCI_COMMAND_MEMORY != 0) != on {
            return Err(ExerciseError::DecodeStuck { wrote, got: after });
        }
        Ok((before, after))
    }

    fn decode(&mut self, spec: String, on: bool) -> Result<Decode, ExerciseError> {
        let start = Instant::now();
        let (command_before, command_after) = self.write_decode(on)?;
        Ok(Decode {
            spec,
            command_before,
            command_after,
            elapsed_ns: ns(start),
        })
    }

    /// Maps `size` bytes and lets a forked child read the first word: with decode
    /// off the fault handler answers SIGBUS, which kills the child, not us.
    fn sigbus(&mut self, spec: String, size: u64) -> Result<Sigbus, ExerciseError> {
        if self.decode_is_on()? {
            return Err(ExerciseError::DecodeIsOn);
        }
        let map = BarMapping::map(self.device.file(), self.bar.offset, size, None)?;
        self.totals.mmaps += 1;
        let start = Instant::now();
        let addr = map.addr() as *const u32;
        // SAFETY: the child only makes async-signal-safe calls and a read of our
        // own mapping (inherited by fork: vfio sets no VM_DONTCOPY), then _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os("fork"));
        }
        if pid == 0 {
            // SAFETY: see above; nothing here returns into Rust code.
            unsafe {
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core);
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                libc::sigaddset(&raw mut set, libc::SIGBUS);
                libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
                std::ptr::read_volatile(addr);
                libc::_exit(0);
            }
        }
        self.totals.sigbus_touches += 1;
        let status = wait_child(pid)?;
        let elapsed_ns = ns(start);
        map.unmap()?;
        let sigbus = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS;
        let child_status = if sigbus {
            "SIGBUS".to_owned()
        } else if libc::WIFSIGNALED(status) {
            format!("signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit {}", libc::WEXITSTATUS(status))
        };
        Ok(Sigbus {
            spec,
            map_addr: addr as u64,
            size,
            child_pid: pid,
            sigbus_touches: 1,
            sigbus,
            child_status,
            elapsed_ns,
        })
    }
}

fn os(what: &'static str) -> ExerciseError {
    ExerciseError::Os {
        what,
        source: io::Error::last_os_error(),
    }
}

fn wait_child(pid: libc::pid_t) -> Result<i32, ExerciseError> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child and writes one int.
        if unsafe { libc::waitpid(pid, &raw mut status, 0) } == pid {
            return Ok(status);
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(os("waitpid"));
        }
    }
}
