//! Real VFIO clients for the lab guest: Debian's QEMU, unpacked into the share
//! with its whole library closure (see `debtree`), run in the guest by
//! guest/client.sh through the unpacked loader. QEMU 7.2 (bookworm) does not
//! align BAR mmaps; 10.0 (bookworm-backports) does, since 9.2, so its DMA map
//! of the BAR can take huge faults wherever the BAR is big enough.

use std::{fmt, fs, path::Path, str::FromStr};

use anyhow::{Context as _, Result};

use crate::{cmd, debtree::DebTree};

/// The guest script, written to the share's root as `client.sh`.
const SCRIPT: &str = include_str!("../guest/client.sh");
/// Where the guest finds the script.
pub const GUEST_SCRIPT: &str = "/mnt/host/client.sh";

/// One QEMU version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qemu {
    V7_2,
    V10,
}

impl Qemu {
    /// The version as `--client qemu=VERSION` names it, and its tree's suffix
    /// in the share (`qemu-VERSION`).
    pub fn version(self) -> &'static str {
        match self {
            Self::V7_2 => "7.2",
            Self::V10 => "10",
        }
    }

    /// A word for file names: `qemu72`, `qemu10`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::V7_2 => "qemu72",
            Self::V10 => "qemu10",
        }
    }

    fn tree(self) -> DebTree {
        match self {
            Self::V7_2 => DebTree {
                specs: &["qemu-system-x86=1:7.2+dfsg-7+deb12u18+b3"],
                release: "bookworm",
                share_dir: "qemu-7.2",
                binary: "usr/bin/qemu-system-x86_64",
            },
            Self::V10 => DebTree {
                specs: &["qemu-system-x86=1:10.0.2+ds-2+deb13u1~bpo12+1"],
                release: "bookworm-backports",
                share_dir: "qemu-10",
                binary: "usr/bin/qemu-system-x86_64",
            },
        }
    }

    /// Shell that runs this client in the guest, in the working directory,
    /// writing `NAME.bios.log` and `NAME.qemu.log` there.
    pub fn command(self, name: &str, l2: L2) -> String {
        let flag = match l2 {
            L2::Bios => "",
            L2::Linux => " --linux",
        };
        format!("sh {GUEST_SCRIPT}{flag} {} {name}", self.version())
    }
}

impl fmt::Display for Qemu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QEMU {}", self.version())
    }
}

/// What the nested VM runs: its BIOS only, which finds nothing to boot
/// (seconds), or the lab's own kernel to its init (minutes under TCG), whose
/// PCI probe clears memory decode while sizing BARs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum L2 {
    #[default]
    Bios,
    Linux,
}

/// The `--client` value: `qemu` (both, 7.2 first), `qemu=7.2` or `qemu=10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clients(pub Vec<Qemu>);

impl FromStr for Clients {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qemu" => Ok(Self(vec![Qemu::V7_2, Qemu::V10])),
            "qemu=7.2" => Ok(Self(vec![Qemu::V7_2])),
            "qemu=10" => Ok(Self(vec![Qemu::V10])),
            other => Err(format!("no client {other:?}: qemu, qemu=7.2 or qemu=10")),
        }
    }
}

/// Downloads (once, into the project cache) and unpacks each client into the
/// share, with the guest script beside them and, for `L2::Linux`, `vmlinuz`
/// as the nested VM's kernel.
pub fn stage(clients: &[Qemu], share: &Path, l2: L2, vmlinuz: &Path) -> Result<()> {
    for q in clients {
        let tree = q.tree();
        tree.stage(&tree.debs()?, share)
            .with_context(|| format!("staging {q}"))?;
    }
    if l2 == L2::Linux {
        let dir = share.join("l2");
        cmd::mkdir(&dir)?;
        fs::copy(vmlinuz, dir.join("vmlinuz"))
            .with_context(|| format!("copying {} into the share", vmlinuz.display()))?;
    }
    let script = share.join("client.sh");
    fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_names() {
        assert_eq!("qemu=7.2".parse(), Ok(Clients(vec![Qemu::V7_2])));
        assert_eq!("qemu=10".parse(), Ok(Clients(vec![Qemu::V10])));
        assert_eq!("qemu".parse(), Ok(Clients(vec![Qemu::V7_2, Qemu::V10])));
        assert!("qemu=8".parse::<Clients>().is_err());
        assert!("".parse::<Clients>().is_err());
    }

    #[test]
    fn commands_name_the_tree() {
        assert_eq!(
            Qemu::V7_2.command("run", L2::Bios),
            "sh /mnt/host/client.sh 7.2 run"
        );
        assert_eq!(
            Qemu::V10.command("run", L2::Linux),
            "sh /mnt/host/client.sh --linux 10 run"
        );
        assert_eq!(Qemu::V10.tree().share_dir, "qemu-10");
    }
}
