use super::*;

fn row(bdf: &str, faults: f64, p99: u64) -> DeviceRow {
    let mut r = DeviceRow::new(Bdf::parse(bdf).expect("bdf"));
    r.faults_per_s = faults;
    r.fault_latency.p99 = p99;
    r
}

fn app(rows: Vec<DeviceRow>) -> App {
    let mut a = App::new(None);
    a.set_sample(Sample {
        devices: rows,
        ..Sample::default()
    });
    a
}

fn shown(a: &App) -> Vec<String> {
    a.rows().iter().map(|r| r.bdf.to_string()).collect()
}

fn keys(a: &mut App, keys: &[Key]) {
    for k in keys {
        a.on_key(*k);
    }
}

fn three() -> App {
    app(vec![
        row("0000:01:00.0", 10.0, 500),
        row("0000:02:00.0", 300.0, 100),
        row("0000:03:00.0", 20.0, 900),
    ])
}

#[test]
fn rows_sort_by_faults_first_and_s_cycles_the_key() {
    let mut a = three();
    assert_eq!(shown(&a), ["0000:02:00.0", "0000:03:00.0", "0000:01:00.0"]);
    a.on_key(Key::Char('s'));
    assert_eq!(a.sort, SortKey::P99);
    assert_eq!(shown(&a), ["0000:03:00.0", "0000:01:00.0", "0000:02:00.0"]);
    a.on_key(Key::Char('r'));
    assert_eq!(shown(&a), ["0000:02:00.0", "0000:01:00.0", "0000:03:00.0"]);
    keys(&mut a, &[Key::Char('s'); 4]);
    assert_eq!(a.sort, SortKey::Bdf);
    // Reversed still: the BDF's own order is smallest first.
    assert_eq!(shown(&a), ["0000:03:00.0", "0000:02:00.0", "0000:01:00.0"]);
    a.on_key(Key::Char('r'));
    assert_eq!(shown(&a), ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"]);
}

#[test]
fn the_selection_follows_its_device_through_sorts_and_refreshes() {
    let mut a = three();
    a.on_key(Key::Down);
    assert_eq!(
        a.selected_row().map(|r| r.bdf.to_string()).as_deref(),
        Some("0000:03:00.0")
    );
    a.on_key(Key::Char('s'));
    assert_eq!(a.selected, 0);
    let mut fresh = three().sample;
    fresh.devices.remove(0);
    a.set_sample(fresh);
    assert_eq!(
        a.selected_row().map(|r| r.bdf.to_string()).as_deref(),
        Some("0000:03:00.0")
    );
    keys(&mut a, &[Key::Down, Key::Down, Key::Down]);
    assert_eq!(a.selected, 1, "stops at the last row");
    keys(&mut a, &[Key::Up, Key::Up, Key::Char('k')]);
    assert_eq!(a.selected, 0);
}

#[test]
fn slash_filters_by_address_ids_or_name_and_esc_clears() {
    let mut a = three();
    a.sample.devices[2].name = Some("Red Hat Inter-VM shared memory".into());
    a.sample.devices[2].vendor = Some(0x1af4);
    a.sample.devices[2].device = Some(0x1110);
    keys(&mut a, &[Key::Char('/'), Key::Char('0'), Key::Char('2')]);
    assert!(a.editing_filter);
    assert_eq!(shown(&a), ["0000:02:00.0"]);
    // While typing, q is a letter, not quit.
    keys(&mut a, &[Key::Backspace, Key::Backspace, Key::Char('q')]);
    assert!(!a.quit);
    assert!(shown(&a).is_empty());
    keys(&mut a, &[Key::Backspace]);
    for c in "inter-vm".chars() {
        a.on_key(Key::Char(c));
    }
    a.on_key(Key::Enter);
    assert!(!a.editing_filter);
    assert_eq!(shown(&a), ["0000:03:00.0"]);
    keys(&mut a, &[Key::Char('/'), Key::Esc]);
    assert_eq!(a.filter, "");
    for c in "/1af4:1110".chars() {
        a.on_key(Key::Char(c));
    }
    a.on_key(Key::Enter);
    assert_eq!(shown(&a), ["0000:03:00.0"]);
    a.on_key(Key::Esc);
    assert_eq!(shown(&a).len(), 3);
}

#[test]
fn enter_opens_the_selected_device_and_esc_goes_back() {
    let mut a = three();
    a.on_key(Key::Enter);
    let bdf = Bdf::parse("0000:02:00.0").expect("bdf");
    assert_eq!(a.screen, Screen::Device(bdf));
    assert_eq!(a.device().map(|r| r.bdf), Some(bdf));
    // The device a live source works the projection out for.
    assert_eq!(a.focus(), Some(bdf));
    a.on_key(Key::Esc);
    assert_eq!(a.screen, Screen::Table);
    assert_eq!(a.focus(), None);
    assert!(app(vec![]).device().is_none());
    let mut empty = app(vec![]);
    empty.on_key(Key::Enter);
    assert_eq!(empty.screen, Screen::Table);
}

#[test]
fn help_opens_on_question_mark_any_key_closes_it_q_and_ctrl_c_quit() {
    let mut a = three();
    a.on_key(Key::Char('?'));
    assert!(a.help);
    a.on_key(Key::Down);
    assert!(!a.help && !a.quit);
    assert_eq!(
        a.selected, 0,
        "the key that closes the help does nothing else"
    );
    keys(&mut a, &[Key::Char('?'), Key::Char('q')]);
    assert!(a.quit);
    let mut b = three();
    b.on_key(Key::Char('q'));
    assert!(b.quit);
    let mut c = three();
    keys(&mut c, &[Key::Char('/'), Key::CtrlC]);
    assert!(c.quit);
}

#[test]
fn a_replay_plays_at_its_speed_pauses_steps_and_stops_at_the_end() {
    let mut a = App::new(Some(10));
    let second = Duration::from_secs(1);
    a.on_tick(second);
    assert_eq!(a.position(), Some(1));
    a.on_key(Key::Char('+'));
    a.on_tick(second);
    assert_eq!(a.position(), Some(3));
    keys(&mut a, &[Key::Char('-'), Key::Char('-')]);
    a.on_tick(second);
    a.on_tick(second);
    assert_eq!(a.position(), Some(4), "half speed: a second every two");
    a.on_key(Key::Char(' '));
    a.on_tick(second * 5);
    assert_eq!(a.position(), Some(4), "paused");
    keys(&mut a, &[Key::Right, Key::Right, Key::Left]);
    assert_eq!(a.position(), Some(5));
    assert!(a.playback.is_some_and(|p| p.paused));
    keys(&mut a, &[Key::Char(' '), Key::Char('+'), Key::Char('+')]);
    a.on_tick(second * 30);
    assert_eq!(a.position(), Some(9));
    assert!(a.playback.is_some_and(|p| p.paused), "holds at the end");
    a.on_key(Key::Char(' '));
    assert_eq!(a.position(), Some(0), "space at the end plays again");
    keys(&mut a, &[Key::Left, Key::Char('0')]);
    assert_eq!(a.position(), Some(0));
}

#[test]
fn live_has_no_playback_and_ignores_its_keys() {
    let mut a = three();
    keys(&mut a, &[Key::Char(' '), Key::Right, Key::Char('+')]);
    assert_eq!(a.position(), None);
    assert!(!a.quit);
}
