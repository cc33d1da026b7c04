//! `top --replay` in a real terminal: tmux runs it on the checked-in
//! recording, the captured screen shows the recording's figures, keys
//! work, and q, Ctrl-C and SIGTERM each give the terminal back.
//! Without tmux (`cargo xtask setup` installs it) the test says so and passes.

#![expect(
    unused_crate_dependencies,
    reason = "an integration test drives the binary and uses none of the package's dependencies"
)]

use std::{
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_vfio-trace");
const RECORDING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/top-replay.json");

/// A tmux server of its own, killed on drop.
struct Tmux {
    socket: String,
    /// Numbers each stty check, so an earlier answer is not read again.
    checks: std::cell::Cell<u32>,
}

impl Tmux {
    fn start(name: &str) -> Option<Self> {
        let socket = format!("vfio-trace-{name}-{}", std::process::id());
        let t = Self {
            socket,
            checks: std::cell::Cell::new(0),
        };
        // A plain shell at a known size; no user config.
        let ok = t
            .cmd(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "132",
                "-y",
                "40",
                "sh",
            ])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(t)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).args(args);
        c
    }

    fn out(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().expect("tmux runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        assert!(self.cmd(&args).status().expect("tmux").success());
    }

    fn line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.out(&["capture-pane", "-p", "-t", "0"])
    }

    /// The screen once `ok` holds of it (10 s at most).
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited for {what}; the screen:\n{s}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn alternate_screen(&self) -> bool {
        self.out(&["display-message", "-p", "-t", "0", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// After top is gone: the shell's own screen, in cooked mode.
    fn assert_restored(&self) {
        let s = self.wait("the shell's screen", |s| {
            !s.contains("vfio-trace top  kernel")
        });
        assert!(
            !self.alternate_screen(),
            "still on the alternate screen:\n{s}"
        );
        let n = self.checks.get() + 1;
        self.checks.set(n);
        let end = format!("STTY{n}");
        self.line(&format!(
            "stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo {end}"
        ));
        let answered = |s: &str| s.lines().any(|l| l.ends_with(&end) && !l.contains("grep"));
        let s = self.wait("stty's answer", answered);
        let answer = s.lines().rfind(|l| l.ends_with(&end)).unwrap_or_default();
        // The shell's prompt may lead the line when the command was typed
        // before the prompt came.
        assert_eq!(
            answer.trim().trim_start_matches(['#', '$']).trim(),
            format!("icanon echo {end}"),
            "raw mode left on:\n{s}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

fn tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("tmux is not installed (cargo xtask setup installs it): skipped");
    }
    ok
}

/// The words of the screen line that starts with `start`.
fn row(screen: &str, start: &str) -> Vec<String> {
    let line = screen
        .lines()
        .find(|l| l.trim_start_matches('│').starts_with(start))
        .unwrap_or_else(|| panic!("no {start} row in:\n{screen}"));
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Starts the replay at second 4; the long interval keeps it there.
fn start_top(t: &Tmux) -> String {
    t.line(&format!(
        "{BIN} top --replay {RECORDING} --at 4 --interval 600"
    ));
    t.wait("the table", |s| {
        s.contains("replay 4s of 10s") && s.contains("│0000:02:00.0")
    })
}

#[test]
fn replay_in_tmux_shows_the_recording_and_q_restores_the_terminal() {
    if !tmux() {
        return;
    }
    let t = Tmux::start("q").expect("tmux starts");
    let s = start_top(&t);
    assert!(t.alternate_screen());
    // Second 4 of the recording: 165 faults, 20 4K, 145 2M, 5 fallbacks.
    assert_eq!(
        row(&s, "0000:01:00.0")[..7],
        ["0000:01:00.0", "1af4:1110", "165", "20", "145", "0", "5"],
        "{s}"
    );
    assert!(s.contains("probes 3/4 attached  lock_begin: absent"), "{s}");

    // One second on (and paused): 150 2M faults.
    t.keys(&["Right"]);
    let s = t.wait("second 5", |s| s.contains("replay 5s of 10s, paused"));
    assert_eq!(row(&s, "0000:01:00.0")[2..5], ["170", "20", "150"], "{s}");

    t.keys(&["Enter"]);
    let s = t.wait("the device view", |s| {
        s.contains("BARs: what faults mapped")
    });
    assert!(s.contains("faults 170/s"), "{s}");
    assert!(s.contains("decode-off"), "{s}");

    t.keys(&["?"]);
    t.wait("the help", |s| {
        s.contains("quit (the terminal is restored)")
    });
    t.keys(&["x"]);
    t.wait("the help closed", |s| {
        !s.contains("quit (the terminal is restored)")
    });
    t.keys(&["Escape"]);
    t.wait("the table again", |s| s.contains("devices (2)"));

    // Sorted by BDF, reversed: 0000:02 first.
    t.keys(&["s", "s", "s", "s", "s", "r"]);
    let first_row = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("│0000:"))
            .unwrap_or_default()
            .starts_with("│0000:02:00.0")
    };
    // Waits for the last key's effect, not just the sort's name.
    t.wait("0000:02:00.0 first, sorted by BDF", |s| {
        s.contains("sorted by BDF") && first_row(s)
    });

    t.keys(&["q"]);
    t.assert_restored();
}

#[test]
fn ctrl_c_and_sigterm_restore_the_terminal_too() {
    if !tmux() {
        return;
    }
    let t = Tmux::start("signals").expect("tmux starts");
    start_top(&t);
    t.keys(&["C-c"]);
    t.assert_restored();

    start_top(&t);
    // The pane's shell runs top: its only child.
    let shell = t.out(&["display-message", "-p", "-t", "0", "#{pane_pid}"]);
    let top = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .expect("pgrep");
    let top = String::from_utf8_lossy(&top.stdout).trim().to_owned();
    assert!(!top.is_empty() && !top.contains('\n'), "top's pid: {top:?}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &top])
            .status()
            .expect("kill")
            .success()
    );
    t.assert_restored();
}
