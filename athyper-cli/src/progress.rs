//! Progress of long bulk actions: a bar on a terminal, nothing in a pipe.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// A progress bar on standard error, hidden unless it is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Progress of `what` over `total` jobs, or over an unknown number.
    pub fn new(output: &Output, what: &str, total: Option<u64>) -> Progress {
        if !output.stderr_terminal {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = match total {
            Some(_) => {
                "{msg} [{bar:40}] {human_pos}/{human_len} jobs, {elapsed} (about {eta} left)"
            }
            None => "{spinner} {msg}: {human_pos} jobs, {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// `done` jobs so far.
    pub fn set(&self, done: usize) {
        self.bar
            .set_position(u64::try_from(done).unwrap_or(u64::MAX));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error on the way out must not leave a bar on the screen.
        self.bar.finish_and_clear();
    }
}
