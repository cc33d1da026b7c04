//! Render tests: the screens drawn into ratatui's `TestBackend` from the
//! synthetic recording (`fixture`), checked for its figures.

use ratatui::{Terminal, backend::TestBackend};

use super::{
    app::{App, Key},
    fixture,
    pci_ids::PciIds,
    source::{Source, replay::Replay},
    ui,
};

pub fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    t.draw(|f| ui::render(app, f)).expect("draw");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn names() -> PciIds {
    PciIds::parse("1af4  Red Hat, Inc.\n\t1110  Inter-VM shared memory\n")
}

/// The replay at recorded second `at`.
pub fn replay_at(at: u64) -> (App, Replay) {
    let mut src = Replay::new(fixture::recording(), names());
    let mut app = App::new(Some(src.length()));
    for _ in 0..at {
        app.on_key(Key::Right);
    }
    app.set_sample(src.sample(app.position()));
    (app, src)
}

/// The screen's line that starts with `start` (after the border).
fn line<'a>(screen: &'a str, start: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.trim_start_matches('│').starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in\n{screen}"))
}

fn words(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn the_table_shows_each_devices_figures_for_the_second_replayed() {
    let (app, _) = replay_at(4);
    let s = screen(&app, 140, 20);
    // 140 2M + 20 4K faults, 5 of them 2M fallbacks; the zap of second 3
    // removed 512 pages, back by now.
    let a = words(line(&s, fixture::A));
    assert_eq!(
        a[..10],
        [
            "0000:01:00.0",
            "1af4:1110",
            "165",
            "20",
            "145",
            "0",
            "5",
            "≤3.7µs",
            "≤4.8µs",
            "0"
        ]
    );
    assert_eq!(a[10..14], ["42µs", "512", "-", "0"]);
    assert!(line(&s, fixture::A).contains("Red Hat, Inc. Inter-VM"));
    let b = words(line(&s, fixture::B));
    assert_eq!(
        b[..7],
        ["0000:02:00.0", "8086:10ca", "0", "0", "0", "0", "0"]
    );
    // Header: the run, the probe not attached, the tool's cost.
    assert!(
        s.contains("kernel 6.12.48 (huge-fault)  replay 4s of 10s, paused x1"),
        "{s}"
    );
    assert!(s.contains("probes 3/4 attached  lock_begin: absent"), "{s}");
    assert!(
        s.contains("cost: BPF 400ns/run x 1.0k/s, CPU 1.5%   lost 0"),
        "{s}"
    );
}

#[test]
fn the_busier_device_leads_and_losses_show_when_their_second_comes() {
    let (app, _) = replay_at(6);
    let s = screen(&app, 140, 20);
    let rows: Vec<&str> = s.lines().filter(|l| l.starts_with("│0000:")).collect();
    assert!(rows[0].contains(fixture::A) && rows[1].contains(fixture::B));
    assert_eq!(words(line(&s, fixture::B))[2..4], ["7", "7"]);
    let (app, _) = replay_at(9);
    let s = screen(&app, 140, 20);
    assert!(s.contains("lost 3"), "{s}");
    assert_eq!(words(line(&s, fixture::A))[13], "3");
}

#[test]
fn the_device_view_shows_bars_orders_latency_pages_rates_and_zaps() {
    let (mut app, _) = replay_at(5);
    app.on_key(Key::Enter);
    let s = screen(&app, 120, 50);
    assert!(
        s.contains("0000:01:00.0 1af4:1110 Red Hat, Inc. Inter-VM shared memory"),
        "{s}"
    );
    // BAR 2: 32 MiB; 1455 2M faults on 16 pages, of which 1450 mapped
    // (5 fell back); 200 4K faults on 20 pages.
    let bar = words(line(&s, "2    32M"));
    assert_eq!(
        bar[..7],
        ["2", "32M", "1655", "36", "200", "1450", "0"],
        "{s}"
    );
    assert_eq!(words(line(&s, "2M"))[..3], ["2M", "1455", "88%"]);
    // The recording's faults carry no origin: every one reads `other`.
    assert!(
        s.contains("order mix (run); from cpu 0, dma-map 0, other 1655"),
        "{s}"
    );
    assert_eq!(words(line(&s, "4K"))[..3], ["4K", "200", "12%"]);
    assert!(s.contains("fault latency percentiles"), "{s}");
    // The heatmap: faults on the 16 huge pages and the BAR's last 4K pages.
    let heat = line(&s, "BAR 2");
    assert!(heat.contains('█') && heat.contains('·'), "{heat}");
    assert!(s.contains("faults/s (now 170)"), "{s}");
    assert!(s.contains("zaps/s (now 0)"), "{s}");
    // The run's projection: 1455 2M faults on 16 huge pages and 200 4K
    // ones on 20 pages of the last would be one fault per 2 MiB window, at
    // the mean the run measured for 2M faults.
    assert_eq!(
        line(&s, "BAR2 ").trim_matches(|c: char| c == '│' || c == ' '),
        "BAR2 32 MiB @2 MiB-aligned: 1,655 faults (5.7 ms) → 16 at 2 MiB (~59.8 us); \
         2 MiB already, the best it allows",
        "{s}"
    );
    let zap = words(line(&s, "decode-off"));
    assert_eq!(zap[..5], ["decode-off", "42µs", "512", "512", "512"], "{s}");
    app.on_key(Key::Esc);
    assert!(screen(&app, 120, 50).contains("devices (2)"));
}

#[test]
fn the_projection_of_a_mapping_aligned_to_4k_shows_the_gain_at_2m() {
    let (mut app, _) = replay_at(5);
    app.on_key(Key::Down);
    app.on_key(Key::Enter);
    let s = screen(&app, 120, 50);
    assert!(s.contains("0000:02:00.0 8086:10ca"), "{s}");
    // 21 4K faults of 2 µs, all in the first 2 MiB window: one 2 MiB
    // fault, timed at the 4K mean since the run saw no 2M fault here.
    assert_eq!(
        line(&s, "BAR2 ").trim_matches(|c: char| c == '│' || c == ' '),
        "BAR2 32 MiB @4 KiB-aligned: 21 faults (42.0 us) → 1 at 2 MiB (~2.0 us, timed as 4 KiB \
         faults); align it to 2 MiB",
        "{s}"
    );
}

#[test]
fn many_projection_lines_are_counted_and_an_empty_panel_says_when_it_fills() {
    fn projection(app: &mut App) -> &mut Vec<String> {
        &mut app
            .sample
            .devices
            .iter_mut()
            .find(|r| r.bdf.to_string() == fixture::A)
            .expect("device A")
            .detail
            .projection
    }
    let (mut app, _) = replay_at(5);
    app.on_key(Key::Enter);
    *projection(&mut app) = (0..6).map(|i| format!("mapping {i}")).collect();
    let s = screen(&app, 120, 50);
    assert!(s.contains("mapping 2") && !s.contains("mapping 3"), "{s}");
    assert!(
        s.contains("and 3 more mappings: `vfio-trace report` lists each"),
        "{s}"
    );
    // Live works it out at the refresh after the view opens.
    projection(&mut app).clear();
    let s = screen(&app, 120, 50);
    assert!(s.contains("worked out at the next refresh"), "{s}");
}

#[test]
fn the_help_overlays_the_table_and_lists_the_keys() {
    let (mut app, _) = replay_at(1);
    app.on_key(Key::Char('?'));
    let s = screen(&app, 100, 24);
    assert!(s.contains(" keys "), "{s}");
    for text in [
        "quit (the terminal is restored)",
        "sort by the next column",
        "replay: pause or play",
    ] {
        assert!(s.contains(text), "{text} missing:\n{s}");
    }
    // Live, the replay keys are not offered.
    let mut live = App::new(None);
    live.sample = app.sample.clone();
    live.on_key(Key::Char('?'));
    assert!(!screen(&live, 100, 24).contains("replay: pause"));
}

#[test]
fn a_terminal_too_small_gets_a_message_not_a_squeezed_table() {
    let (app, _) = replay_at(1);
    let s = screen(&app, 60, 10);
    assert!(s.starts_with("vfio-trace top: terminal too small"), "{s}");
    assert!(s.contains("60x10, needs 80x12"));
    assert!(!s.contains("0000:01:00.0"));
}

#[test]
fn the_filter_is_typed_in_the_footer_and_narrows_the_table() {
    let (mut app, _) = replay_at(6);
    for c in "/8086".chars() {
        app.on_key(Key::Char(c));
    }
    let s = screen(&app, 120, 16);
    assert!(s.contains("filter: 8086_"), "{s}");
    assert!(s.contains("devices (1 of 2, filter \"8086\")"), "{s}");
    assert!(!s.contains("│0000:01:00.0"));
}

#[test]
fn once_prints_the_whole_run_as_text() {
    let mut src = Replay::new(fixture::recording(), names());
    let mut app = App::new(None);
    app.set_sample(src.sample(None));
    let text = super::text::once(&app);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("replay: the whole run (10s), rates are averages"),
        "{text}"
    );
    assert!(lines[4].starts_with("0000:01:00.0  1af4:1110"), "{text}");
    // 1655 faults in 10 s, 200 of them 4K; lost 3.
    assert_eq!(words(lines[4])[2..5], ["166", "20", "146"], "{text}");
    assert_eq!(words(lines[4])[13], "3", "{text}");
}
