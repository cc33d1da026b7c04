//! `vfio-trace top`: the live view of BAR faults, and replay of recordings.
//!
//! State and keys (`app`) are apart from drawing (`ui`); everything `top`
//! waits for comes through one channel (`event`); figures come from a
//! [`source::Source`], live or replayed, as plain [`view::Sample`]s.

pub mod app;
pub mod device_view;
pub mod event;
pub mod format;
pub use crate::device::pci_ids;
pub mod projection;
pub mod source;
pub mod text;
mod tui;
pub mod ui;
pub mod view;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod ui_tests;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};

use crate::record::document::Document;
use app::App;
use event::{Event, Events};
use pci_ids::PciIds;
use source::{Source, live::Live, replay::Replay};

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
    /// Play back a recording (`vfio-trace record` JSON) instead of tracing:
    /// no root needed.
    #[arg(long, value_name = "RUN.json")]
    pub replay: Option<PathBuf>,
    /// Replay: start at this recorded second (with --once: show it; without,
    /// --once shows the whole run's averages).
    #[arg(long, value_name = "SECS", requires = "replay")]
    pub at: Option<u64>,
    /// Print one text snapshot and exit (live: after one interval).
    #[arg(long)]
    pub once: bool,
    /// Live: trace only this device (repeatable). Default: every vfio-pci device.
    #[arg(long = "device", value_name = "BDF", conflicts_with = "replay")]
    pub devices: Vec<String>,
}

/// # Errors
/// A bad `--interval`, a recording that cannot be read, probes that cannot
/// attach, or a terminal that cannot be used.
pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.05) {
        bail!(
            "--interval must be at least 0.05 seconds, not {}",
            args.interval
        );
    }
    let interval = Duration::from_secs_f64(args.interval);
    let names = PciIds::system();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &args.replay {
            Some(path) => replay(args, Replay::new(Document::read(path)?, names), interval).await,
            // Probes attach before the terminal is taken: a failure prints plainly.
            None => live(args, Live::start(&args.devices, names)?, interval).await,
        }
    })
}

async fn replay(args: &TopArgs, mut src: Replay, interval: Duration) -> anyhow::Result<()> {
    let length = src.length();
    if args.once {
        let mut app = App::new(None);
        app.set_sample(src.sample(args.at));
        print!("{}", text::once(&app));
        return Ok(());
    }
    let mut app = App::new(Some(length));
    if let (Some(p), Some(at)) = (&mut app.playback, args.at) {
        p.at = at.min(length - 1);
    }
    let events = Events::new();
    events.ticks(interval);
    events.signals().context("installing signal handlers")?;
    interactive(&mut app, &mut src, events, interval).await
}

async fn live(args: &TopArgs, mut src: Live, interval: Duration) -> anyhow::Result<()> {
    if args.once {
        src.sample(None);
        let deadline = tokio::time::sleep(interval);
        tokio::pin!(deadline);
        loop {
            let batch = tokio::select! {
                b = src.next_batch() => b,
                () = &mut deadline => break,
            };
            src.ingest(&batch);
        }
        src.catch_up().await;
        let mut app = App::new(None);
        app.set_sample(src.sample(None));
        src.stop().await;
        print!("{}", text::once(&app));
        return Ok(());
    }
    let events = Events::new();
    events.ticks(interval);
    let result = match events.signals() {
        Ok(()) => interactive(&mut App::new(None), &mut src, events, interval).await,
        Err(e) => Err(anyhow::Error::new(e).context("installing signal handlers")),
    };
    // Detached whatever ended the view.
    src.stop().await;
    result
}

/// A new sample, told first which device's view is open.
fn refresh<S: Source>(app: &mut App, src: &mut S) {
    src.focus(app.focus());
    app.set_sample(src.sample(app.position()));
}

/// The view until q, Ctrl-C or a signal; the terminal is restored on
/// every way out (`tui::Tui`'s Drop and its panic hook).
async fn interactive<S: Source>(
    app: &mut App,
    src: &mut S,
    mut events: Events,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut tui = tui::Tui::enter()?;
    events.terminal();
    refresh(app, src);
    tui.draw(app)?;
    loop {
        let ev = tokio::select! {
            ev = events.next() => ev,
            batch = src.next_batch() => {
                src.ingest(&batch);
                continue;
            }
        };
        let Some(ev) = ev else { break };
        match ev {
            Event::Tick => {
                app.on_tick(interval);
                src.catch_up().await;
                refresh(app, src);
            }
            Event::Key(key) => {
                let was = app.position();
                app.on_key(key);
                if app.position() != was {
                    refresh(app, src);
                }
            }
            Event::Resize => {}
            Event::Quit => app.quit = true,
        }
        if app.quit {
            break;
        }
        tui.draw(app)?;
    }
    Ok(())
}
