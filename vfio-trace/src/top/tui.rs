//! The terminal while `top` runs: raw mode and the alternate screen, given
//! back on drop and by a panic hook, whatever ends the view.

use std::{
    io::{Stdout, stdout},
    sync::Once,
};

use anyhow::Context as _;
use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor::Show,
        execute,
        terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
    },
};

use super::{app::App, ui};

pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

/// Gives the terminal back; safe to call more than once.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

fn hook_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The message is printed on the restored screen, not lost in
            // the alternate one.
            restore();
            previous(info);
        }));
    });
}

impl Tui {
    pub fn enter() -> anyhow::Result<Self> {
        hook_panics();
        // From here on, a failure restores what was set so far (Drop).
        let guard = Restore;
        enable_raw_mode().context("terminal raw mode")?;
        execute!(stdout(), EnterAlternateScreen).context("terminal alternate screen")?;
        let mut terminal =
            Terminal::new(CrosstermBackend::new(stdout())).context("opening the terminal")?;
        terminal.hide_cursor().context("hiding the cursor")?;
        std::mem::forget(guard);
        Ok(Self { terminal })
    }

    pub fn draw(&mut self, app: &App) -> anyhow::Result<()> {
        self.terminal
            .draw(|frame| ui::render(app, frame))
            .context("drawing")?;
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores on drop: covers a failure half-way through `Tui::enter`.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}
