//! The one channel `top` waits on: refresh ticks, keys, terminal resizes,
//! and the signals that end it. Traced events come from the source.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ratatui::crossterm::event::{self as term, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::app::Key;

#[derive(Debug)]
pub enum Event {
    Tick,
    Key(Key),
    Resize,
    /// SIGINT, SIGTERM or SIGHUP.
    Quit,
}

pub struct Events {
    tx: UnboundedSender<Event>,
    rx: UnboundedReceiver<Event>,
    /// Ends the key reader.
    stop: Arc<AtomicBool>,
}

impl Events {
    #[must_use]
    pub fn new() -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// A tick every `interval`, the first after one interval (the
    /// caller draws the first screen). Needs a tokio runtime.
    pub fn ticks(&self, interval: Duration) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + interval;
            let mut t = tokio::time::interval_at(first, interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                t.tick().await;
                if tx.send(Event::Tick).is_err() {
                    break;
                }
            }
        });
    }

    /// SIGINT, SIGTERM and SIGHUP end `top` like q does.
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ] {
            let mut s = signal(kind)?;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    let _ = tx.send(Event::Quit);
                }
            });
        }
        Ok(())
    }

    /// The terminal's keys and resizes, read on a thread of their own.
    pub fn terminal(&self) {
        let tx = self.tx.clone();
        let stop = Arc::clone(&self.stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Polled, so the thread sees `stop` within 100 ms.
                match term::poll(Duration::from_millis(100)) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => break,
                }
                let ev = match term::read() {
                    Ok(term::Event::Key(k)) if k.kind != KeyEventKind::Release => {
                        key(k.code, k.modifiers).map(Event::Key)
                    }
                    Ok(term::Event::Resize(..)) => Some(Event::Resize),
                    Ok(_) => None,
                    Err(_) => break,
                };
                if let Some(ev) = ev
                    && tx.send(ev).is_err()
                {
                    break;
                }
            }
        });
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A terminal key as `top` knows it; others are ignored.
#[must_use]
pub fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_is_its_own_key_and_unknown_keys_are_ignored() {
        assert_eq!(
            key(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Key::CtrlC)
        );
        assert_eq!(
            key(KeyCode::Char('c'), KeyModifiers::NONE),
            Some(Key::Char('c'))
        );
        assert_eq!(key(KeyCode::F(1), KeyModifiers::NONE), None);
    }
}
