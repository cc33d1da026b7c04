//! `cargo xtask demo --client`: `vfio-trace record` around real QEMU clients
//! (guest/client.sh), each run's report, and with both clients QEMU 10's run
//! compared against QEMU 7.2's: where 10 aligns its BAR mmap, its DMA map of
//! the BAR takes 1 GiB faults where 7.2 takes 2 MiB ones.

use std::{path::Path, time::Duration};

use crate::client::{L2, Qemu};

/// The guest's output directory, where the recordings stay.
const OUT: &str = "/mnt/host/out";

/// The recording of one client.
fn json(q: Qemu) -> String {
    format!("{OUT}/{}.json", q.slug())
}

/// Record each client, report each run, then compare the last with the first.
pub fn steps(clients: &[Qemu], l2: L2) -> Vec<String> {
    let mut steps = vec!["vfio-trace check".to_owned()];
    for &q in clients {
        steps.push(format!(
            "vfio-trace record -o {} -- {}",
            json(q),
            q.command(q.slug(), l2)
        ));
        steps.push(format!("vfio-trace report {}", json(q)));
    }
    if let [first, .., last] = clients {
        steps.push(format!(
            "vfio-trace report {} {}",
            json(*last),
            json(*first)
        ));
    }
    steps
}

/// How long the guest may take: a nested Linux needs minutes per boot under
/// TCG inside TCG (~5 on a busy 2-core host), a BIOS seconds.
pub fn timeout(clients: &[Qemu], l2: L2) -> Duration {
    let per_client = match l2 {
        L2::Bios => 2,
        L2::Linux => 20,
    };
    Duration::from_mins(5 + per_client * clients.len() as u64)
}

/// Where the host finds what the guest wrote.
pub fn summary(clients: &[Qemu], out_dir: &Path) -> String {
    let files: Vec<String> = clients
        .iter()
        .map(|q| format!("{0}.json ({q}; its SeaBIOS log {0}.bios.log)", q.slug()))
        .collect();
    format!("In {}: {}", out_dir.display(), files.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clients_are_compared() {
        let steps = steps(&[Qemu::V7_2, Qemu::V10], L2::Bios);
        assert_eq!(steps.len(), 6);
        assert_eq!(
            steps[5],
            "vfio-trace report /mnt/host/out/qemu10.json /mnt/host/out/qemu72.json"
        );
        assert!(steps[1].ends_with("-- sh /mnt/host/client.sh 7.2 qemu72"));
    }

    #[test]
    fn one_client_is_not_compared() {
        assert_eq!(steps(&[Qemu::V10], L2::Linux).len(), 3);
    }
}
