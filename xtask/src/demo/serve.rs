//! `cargo xtask demo --serve`: a 6.12 guest runs the exercise in a loop under
//! `vfio-trace serve`, whose port QEMU forwards to 127.0.0.1 on the host, so a
//! local Prometheus can scrape it. Ctrl-C (or SIGTERM) asks the guest to stop:
//! the exporter detaches its probes and the guest powers off.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

use super::{KERNEL, PRELUDE};
use crate::{
    lab::{Console, Forward, Lab, RunOpts, STOP_GRACE},
    setup,
};

/// `vfio-trace serve`'s own default port, used in the guest and, unless told
/// otherwise, on the host.
pub const GUEST_PORT: u16 = 9748;

/// The guest's job: the exporter in the background, the exercise in a loop
/// until the host creates /mnt/host/stop or the exporter dies, then the
/// exporter stopped as a user would (SIGTERM: probes detach, rings drain).
/// Each round: a 4 KiB fault storm, 2 MiB inserts, a zap and refault, a reset.
const SCRIPT: &str = r#"vfio-trace serve --listen 0.0.0.0:9748 &
SERVE=$!
status=0
while [ ! -e /mnt/host/stop ] && kill -0 "$SERVE" 2>/dev/null; do
    vfio-trace exercise --device "$BDF" touch:4k:16m:4k touch:2m:64m:2m refault:4k:4m:4k reset >/dev/null ||
        { status=$?; echo "demo: exercise failed with $status"; break; }
    sleep 1
done
kill -TERM "$SERVE" 2>/dev/null
wait "$SERVE" || status=$?
exit "$status"
"#;

pub fn run(port: u16) -> Result<i32> {
    let host = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // QEMU would fail on a taken port only after the build and the boot.
    drop(
        TcpListener::bind(host)
            .with_context(|| format!("{host} is taken (--port picks another)"))?,
    );
    setup::run(&setup::SetupArgs::default_toolchain())?;
    let lab = Lab::prepare(KERNEL)?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("handling Ctrl-C and SIGTERM")?;
    }
    let console = lab.share.join("out/console.log");
    println!(
        "demo: booting kernel {KERNEL}; its console goes to {}",
        console.display()
    );
    let finished = Arc::new(AtomicBool::new(false));
    let announcer = {
        let (stop, finished) = (Arc::clone(&stop), Arc::clone(&finished));
        thread::spawn(move || announce(host, &stop, &finished))
    };
    let outcome = lab.run(&RunOpts {
        timeout: None,
        script: Some(format!("{PRELUDE}{SCRIPT}")),
        console: Console::Quiet,
        forward: Some(Forward {
            host_port: port,
            guest_port: GUEST_PORT,
        }),
        stop: Some(Arc::clone(&stop)),
        ..RunOpts::default()
    });
    finished.store(true, Ordering::Relaxed);
    if announcer.join().is_err() {
        eprintln!("demo: the URL announcer panicked");
    }
    let outcome = outcome?;
    println!(
        "demo: the guest stopped after {:.0}s with status {}; console in {}",
        outcome.elapsed.as_secs_f64(),
        outcome.status,
        console.display()
    );
    Ok(outcome.status)
}

/// Prints the URL once the exporter answers through the forwarded port, and
/// that the guest is stopping once asked to.
fn announce(host: SocketAddr, stop: &AtomicBool, finished: &AtomicBool) {
    let mut announced = false;
    while !finished.load(Ordering::Relaxed) {
        if stop.load(Ordering::Relaxed) {
            println!(
                "demo: stopping the guest (QEMU is killed if it still runs in {}s)",
                STOP_GRACE.as_secs()
            );
            return;
        }
        if !announced && answers(host) {
            println!("demo: vfio-trace serve: http://{host}/metrics (Ctrl-C stops the guest)");
            announced = true;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Whether GET /metrics at `addr` is answered with 200. QEMU accepts on the
/// forwarded port before anything listens in the guest, so a connection alone
/// proves nothing.
fn answers(addr: SocketAddr) -> bool {
    let timeout = Duration::from_secs(5);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    is_ok_status(&head[..got])
}

fn is_ok_status(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 200 ") || head.starts_with(b"HTTP/1.0 200 ")
}

#[cfg(test)]
mod tests {
    use std::{io::Read as _, io::Write as _, net::TcpListener, thread};

    use super::{answers, is_ok_status};

    #[test]
    fn status_line() {
        assert!(is_ok_status(b"HTTP/1.1 200 OK\r\n"));
        assert!(!is_ok_status(b"HTTP/1.1 404 Not Found"));
        assert!(!is_ok_status(b""));
    }

    /// A port that accepts and then closes, as QEMU's forwarding does while
    /// the guest has no listener, is not an exporter; one that answers is.
    #[test]
    fn answers_only_with_200() {
        for (reply, expected) in [
            (&b""[..], false),
            (b"HTTP/1.1 200 OK\r\n\r\nvfio_trace_faults_total 1\n", true),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = thread::spawn(move || {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(reply);
            });
            assert_eq!(answers(addr), expected);
            server.join().expect("server");
        }
    }
}
