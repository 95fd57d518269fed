//! How results reach the person or the script: tables or JSON on standard
//! output, colour only on a terminal, times people can read.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anstyle::{AnsiColor, Style};
use comfy_table::{Cell, CellAlignment, Color};
use serde::Serialize;

use crate::cli::ColorChoice;
use crate::error::CliError;

/// Where output goes and how it looks.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// JSON instead of tables.
    pub json: bool,
    /// Colour on standard output.
    pub colour: bool,
    /// Colour on standard error.
    pub colour_err: bool,
    /// Standard output is a terminal: redraw in place.
    pub stdout_terminal: bool,
    /// Standard error is a terminal: progress bars.
    pub stderr_terminal: bool,
}

impl Output {
    /// Decides from `--color`, `NO_COLOR` (`no_color`: its value) and
    /// whether each stream is a terminal.
    pub fn new(choice: ColorChoice, no_color: Option<String>, json: bool) -> Output {
        let stdout_terminal = std::io::stdout().is_terminal();
        let stderr_terminal = std::io::stderr().is_terminal();
        let allowed = no_color.is_none_or(|v| v.is_empty());
        let colour = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && allowed,
        };
        Output {
            json,
            colour: colour(stdout_terminal) && !json,
            colour_err: colour(stderr_terminal),
            stdout_terminal,
            stderr_terminal,
        }
    }

    /// Writes `text` to standard output. A closed pipe (`| head`) ends the
    /// command quietly.
    pub fn print(&self, text: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
                _ => CliError::Other(format!("cannot write to standard output: {e}")),
            })
    }

    /// Writes `value` as pretty JSON and a newline.
    pub fn print_json(&self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Other(format!("cannot encode the JSON output: {e}")))?;
        self.print(&format!("{text}\n"))
    }

    /// A note for the person on standard error (`warning: …`, hints).
    pub fn note(&self, text: &str) {
        stderr_line(text);
    }

    /// A warning on standard error.
    pub fn warn(&self, text: &str) {
        stderr_line(&format!(
            "{} {text}",
            paint(self.colour_err, "warning:", WARNING)
        ));
    }

    /// `text` in `style`, when colour is on.
    pub fn paint(&self, text: &str, style: Style) -> String {
        paint(self.colour, text, style)
    }

    /// A table with these column headings; columns named in `numeric`
    /// are right-aligned.
    pub fn table(&self, headings: &[&str], numeric: &[&str]) -> Table {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING);
        if self.colour {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(headings.iter().map(|h| {
            let cell = Cell::new(h);
            if self.colour {
                cell.add_attribute(comfy_table::Attribute::Bold)
            } else {
                cell
            }
        }));
        for (i, heading) in headings.iter().enumerate() {
            if let Some(column) = table.column_mut(i) {
                column.set_padding((0, 2));
                if numeric.contains(heading) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        Table {
            inner: table,
            colour: self.colour,
        }
    }
}

/// Writes one line to standard error; a closed standard error is ignored
/// (`eprintln!` would panic).
pub fn stderr_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// `text` in `style` if `colour`.
pub fn paint(colour: bool, text: &str, style: Style) -> String {
    if colour {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// Bold.
pub const BOLD: Style = Style::new().bold();
/// Dim, for what matters less.
pub const DIM: Style = Style::new().dimmed();
/// Errors.
pub const RED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
/// The `error:` prefix.
pub const ERROR: Style = RED.bold();
/// The `warning:` prefix.
pub const WARNING: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)))
    .bold();

/// The colour of each state (and of a paused queue), the same in tables
/// and in text.
const STATE_COLOURS: [(&str, AnsiColor, Color); 8] = [
    ("waiting", AnsiColor::Blue, Color::DarkBlue),
    ("delayed", AnsiColor::Yellow, Color::DarkYellow),
    ("waiting-children", AnsiColor::BrightBlue, Color::Blue),
    ("active", AnsiColor::Cyan, Color::DarkCyan),
    ("completed", AnsiColor::Green, Color::DarkGreen),
    ("failed", AnsiColor::Red, Color::DarkRed),
    ("cancelled", AnsiColor::BrightBlack, Color::DarkGrey),
    ("paused", AnsiColor::Magenta, Color::DarkMagenta),
];

/// The colour of `state` in a table.
fn state_colour(state: &str) -> Option<Color> {
    STATE_COLOURS
        .iter()
        .find(|(name, _, _)| *name == state)
        .map(|(_, _, colour)| *colour)
}

/// The style of `state` in text.
pub fn state_style(state: &str) -> Style {
    STATE_COLOURS
        .iter()
        .find(|(name, _, _)| *name == state)
        .map_or_else(Style::new, |(_, colour, _)| {
            Style::new().fg_color(Some((*colour).into()))
        })
}

/// Rows of text, aligned in columns without borders, so that `grep` and
/// `awk` work on them too.
pub struct Table {
    inner: comfy_table::Table,
    colour: bool,
}

impl Table {
    /// Adds a row.
    pub fn row(&mut self, cells: impl IntoIterator<Item = Text>) {
        let colour = self.colour;
        self.inner
            .add_row(cells.into_iter().map(|t| t.cell(colour)));
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.inner.row_count() == 0
    }

    /// The table, each line ending in a newline.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for line in self.inner.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// A table cell: its text and, when colour is on, its colour.
#[derive(Clone, Debug)]
pub struct Text {
    text: String,
    colour: Option<Color>,
    dim: bool,
}

impl Text {
    /// In the colour of `state` when `lit`, dimmed otherwise.
    pub fn state(text: impl ToString, state: &str, lit: bool) -> Text {
        Text {
            text: text.to_string(),
            colour: if lit { state_colour(state) } else { None },
            dim: !lit,
        }
    }

    /// Dimmed.
    pub fn dim(text: impl ToString) -> Text {
        Text {
            text: text.to_string(),
            colour: None,
            dim: true,
        }
    }

    fn cell(self, colour: bool) -> Cell {
        let mut cell = Cell::new(self.text);
        if colour {
            if let Some(c) = self.colour {
                cell = cell.fg(c);
            }
            if self.dim {
                cell = cell.add_attribute(comfy_table::Attribute::Dim);
            }
        }
        cell
    }
}

impl<T: ToString> From<T> for Text {
    fn from(text: T) -> Text {
        Text {
            text: text.to_string(),
            colour: None,
            dim: false,
        }
    }
}

/// A count, dimmed when zero, in the colour of its state otherwise.
pub fn count(n: u64, state: &str) -> Text {
    Text::state(n, state, n > 0)
}

/// A duration in its two largest units: `3d 4h`, `2h 5m`, `4m 10s`,
/// `12s`, `250ms`.
pub fn short(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `t` relative to `now`: `12s ago`, `in 3m 10s`.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(past) => format!("{} ago", short(past)),
        Err(future) => format!("in {}", short(future.duration())),
    }
}

/// `t` in UTC to the second: `2024-05-01T11:37:39Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The first line of `text`, at most `max` characters, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let cut = line.chars().count() > max || line.len() < text.trim_end().len();
    if cut {
        let kept: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Output {
        Output {
            json: false,
            colour: false,
            colour_err: false,
            stdout_terminal: false,
            stderr_terminal: false,
        }
    }

    #[test]
    fn tables_are_aligned_without_borders_or_colour_in_pipes() {
        let mut table = plain().table(&["QUEUE", "WAITING"], &["WAITING"]);
        table.row([Text::from("emails"), count(1200, "waiting")]);
        table.row([Text::from("a"), count(0, "waiting")]);
        assert_eq!(
            table.render(),
            "QUEUE   WAITING\nemails     1200\na             0\n"
        );
    }

    #[test]
    fn colour_is_used_only_when_on() {
        let mut output = plain();
        assert_eq!(output.paint("x", BOLD), "x");
        output.colour = true;
        assert_eq!(output.paint("x", BOLD), "\u{1b}[1mx\u{1b}[0m");
        let mut table = output.table(&["N"], &["N"]);
        table.row([count(3, "failed")]);
        assert!(table.render().contains('\u{1b}'), "{:?}", table.render());
    }

    #[test]
    fn no_color_turns_colour_off() {
        let output = Output::new(ColorChoice::Auto, Some("1".into()), false);
        assert!(!output.colour && !output.colour_err);
        let forced = Output::new(ColorChoice::Always, Some("1".into()), false);
        assert!(forced.colour, "--color always wins");
        let json = Output::new(ColorChoice::Always, None, true);
        assert!(!json.colour, "JSON is never coloured");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short(Duration::from_millis(250)), "250ms");
        assert_eq!(short(Duration::from_secs(12)), "12s");
        assert_eq!(short(Duration::from_secs(250)), "4m 10s");
        assert_eq!(short(Duration::from_secs(7_500)), "2h 5m");
        assert_eq!(short(Duration::from_secs(273_600)), "3d 4h");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(relative(now - Duration::from_secs(12), now), "12s ago");
        assert_eq!(relative(now + Duration::from_secs(190), now), "in 3m 10s");
        assert_eq!(timestamp(now), "1970-01-01T00:16:40Z");
    }

    #[test]
    fn long_text_is_clipped() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghijkl", 5), "abcd…");
        assert_eq!(clip("line one\nline two", 40), "line one…");
    }
}
