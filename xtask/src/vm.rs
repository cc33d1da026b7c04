//! `cargo xtask vm`: boot one lab kernel and run a command (or a shell) in it.

use std::{fmt::Write as _, time::Duration};

use anyhow::Result;

use crate::{
    client::{self, Clients},
    lab::{Console, Lab, MAX_DEVICES, MAX_SMP, RunOpts},
};

#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// Kernel to boot: 6.1, 6.12, 6.18 or 7.3.
    #[arg(long)]
    kernel: String,
    /// ivshmem devices bound to vfio-pci.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_DEVICES)))]
    devices: u8,
    /// vCPUs of the guest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_SMP)))]
    smp: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// Kill the guest after this many seconds (not applied to --shell).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Interactive shell on the console (also the default without a command).
    #[arg(long, conflicts_with = "client")]
    shell: bool,
    /// Run a real VFIO client instead of a command: qemu (7.2, then 10),
    /// qemu=7.2 or qemu=10, assigning the first device to a nested VM that
    /// boots, is reset and boots again.
    #[arg(long, value_name = "CLIENT", conflicts_with = "command")]
    client: Option<Clients>,
    /// With --client: what the nested VM runs, its BIOS (seconds) or this
    /// lab kernel to its init (minutes under TCG).
    #[arg(long, value_enum, default_value_t, requires = "client")]
    l2: client::L2,
    /// Command run in the guest; vfio-trace is on its PATH.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Returns the guest command's exit status.
pub fn run(args: &VmArgs) -> Result<i32> {
    let lab = Lab::prepare(&args.kernel)?;
    let script = match &args.client {
        Some(Clients(clients)) => {
            client::stage(clients, &lab.share, args.l2, &lab.kernel.vmlinuz)?;
            Some(client_script(clients, args.l2))
        }
        None if args.shell || args.command.is_empty() => None,
        None => Some(format!("{}\n", shell_words(&args.command))),
    };
    let shell = script.is_none();
    let opts = RunOpts {
        devices: args.devices,
        smp: args.smp,
        memory_mb: args.memory,
        timeout: (!shell).then(|| Duration::from_secs(args.timeout)),
        script,
        console: if shell {
            Console::Interactive
        } else {
            Console::Echo
        },
        ..RunOpts::default()
    };
    let outcome = lab.run(&opts)?;
    eprintln!(
        "vm: kernel {} exited with {} after {:.1}s; output in {}",
        args.kernel,
        outcome.status,
        outcome.elapsed.as_secs_f64(),
        outcome.out_dir.display()
    );
    Ok(outcome.status)
}

/// Each client in turn, its QEMU's own messages after it; exits 1 when any failed.
fn client_script(clients: &[client::Qemu], l2: client::L2) -> String {
    let mut script = String::from("rc=0\n");
    for q in clients {
        let name = q.slug();
        let _ = writeln!(
            script,
            "echo '== {q}'\n\
             {} || rc=1\n\
             [ -s {name}.qemu.log ] && sed 's/^/  qemu: /' {name}.qemu.log",
            q.command(name, l2)
        );
    }
    script.push_str("exit $rc\n");
    script
}

/// Joins words into one POSIX shell command line that reproduces them exactly.
pub fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// One word, quoted for a POSIX shell when it needs it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn quoting() {
        let words: Vec<String> = ["sh", "-c", "ls /dev/vfio; echo 'hi'", ""]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            shell_words(&words),
            r"sh -c 'ls /dev/vfio; echo '\''hi'\''' ''"
        );
    }
}
