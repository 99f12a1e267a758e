//! A progress line on stderr for long `produce` and `consume` runs: the
//! count so far and the rate, redrawn at most every `REDRAW_MS`, only when
//! stderr is a terminal (nothing in pipes, logs or CI), and erased at the
//! end so the terminal shows only the real output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const REDRAW_MS: u64 = 250;
/// Runs shorter than this show no line at all.
const QUIET_FIRST_MS: u64 = 1000;

/// The progress of one run.
pub struct Progress {
    what: &'static str,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `what` ("sent", "read"), if stderr is a terminal.
    pub fn on_terminal(what: &'static str) -> Option<Progress> {
        std::io::stderr().is_terminal().then(|| Progress {
            what,
            started: Instant::now(),
            last_drawn: None,
        })
    }

    /// Shows `count` if the line is due.
    pub fn tick(&mut self, count: u64) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        let due = self
            .last_drawn
            .is_none_or(|at| now.duration_since(at) >= Duration::from_millis(REDRAW_MS));
        if !due || elapsed < Duration::from_millis(QUIET_FIRST_MS) {
            return;
        }
        self.last_drawn = Some(now);
        let rate = count as f64 / elapsed.as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{count} {} ({rate:.0}/s)", self.what);
        let _ = err.flush();
    }
}

impl Drop for Progress {
    /// Erases the line, however the run ends.
    fn drop(&mut self) {
        if self.last_drawn.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
