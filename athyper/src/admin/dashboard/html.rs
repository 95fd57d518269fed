//! HTML pieces: escaping, the page frame, links, times and numbers.
//!
//! Everything that came from a backend, a request or a user (queue names,
//! job ids, handler names, payloads, errors) goes through [`esc`] before it
//! reaches the page; markup of our own is written out literally.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::queue::JobState;

/// Text escaped for HTML, in content and in quoted attributes alike.
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(entity)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// `text`, escaped for HTML.
pub(crate) fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

/// What a path segment or query value keeps as it is.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` percent-encoded for one path segment or query value.
pub(crate) fn enc(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Queues,
    Workers,
    Process,
    SignIn,
}

/// What the frame of every page shows about the person looking.
pub(crate) struct Frame<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) title: &'a str,
    pub(crate) nav: Nav,
    /// Queues for the side list, with whether they are paused.
    pub(crate) queues: &'a [(String, u64, bool)],
    pub(crate) current_queue: Option<&'a str>,
    pub(crate) has_process: bool,
    pub(crate) access: Access,
    pub(crate) csrf: &'a str,
    pub(crate) refresh_ms: u64,
    pub(crate) backend: &'a str,
    pub(crate) flash: Option<Flash>,
    /// The path and query of this page, for "sign in and come back".
    pub(crate) here: &'a str,
}

/// A message at the top of the page after an action.
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

/// What the person may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    /// Actions are off for everybody.
    ReadOnly,
    /// Actions need the token, not presented yet.
    Locked,
    /// Signed in with the token (a cookie).
    SignedIn,
    /// An outer layer authorised the request.
    Layer,
}

impl Access {
    pub(crate) fn can_write(self) -> bool {
        matches!(self, Access::SignedIn | Access::Layer)
    }
}

/// The whole page: head, top bar, side list, `body`.
pub(crate) fn page(frame: &Frame<'_>, body: &str) -> String {
    let p = frame.prefix;
    let mut out = String::with_capacity(body.len() + 4096);
    let v = env!("CARGO_PKG_VERSION");
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · athyper</title>
<link rel="stylesheet" href="{p}/assets/dashboard.css?v={v}">
<link rel="icon" href="{p}/assets/favicon.svg?v={v}" type="image/svg+xml">
<script src="{p}/assets/dashboard.js?v={v}" defer></script>
</head>
<body data-base="{base}" data-refresh="{refresh}" data-queue="{queue}">
<header class="topbar">
  <a class="brand" href="{p}/"><span class="logo" aria-hidden="true"></span>athyper<span class="brand-sub">queues</span></a>
  <nav class="mainnav">
"#,
        title = esc(frame.title),
        base = esc(p),
        refresh = frame.refresh_ms,
        queue = esc(frame.current_queue.unwrap_or("")),
    );
    let item = |out: &mut String, nav: Nav, href: &str, label: &str| {
        let class = if frame.nav == nav {
            " class=\"on\""
        } else {
            ""
        };
        let _ = writeln!(out, "    <a href=\"{p}{href}\"{class}>{label}</a>");
    };
    item(&mut out, Nav::Overview, "/", "Overview");
    item(&mut out, Nav::Workers, "/workers", "Workers");
    if frame.has_process {
        item(&mut out, Nav::Process, "/process", "Process");
    }
    out.push_str("  </nav>\n  <div class=\"topbar-right\">\n");
    let _ = writeln!(
        out,
        "    <span class=\"live\" id=\"live\" title=\"Numbers refresh by themselves\"><span class=\"dot\"></span><span id=\"live-text\">{}</span></span>",
        if frame.refresh_ms > 0 {
            "live"
        } else {
            "static"
        }
    );
    let _ = writeln!(
        out,
        "    <span class=\"pill\" title=\"Queue backend\">{}</span>",
        esc(frame.backend)
    );
    match frame.access {
        Access::ReadOnly => out.push_str(
            "    <span class=\"pill pill-muted\" title=\"Set ATHYPER_ADMIN_TOKEN to allow actions\">read-only</span>\n",
        ),
        Access::Locked if frame.nav == Nav::SignIn => {}
        Access::Locked => {
            let _ = writeln!(
                out,
                "    <a class=\"btn btn-small btn-ghost\" href=\"{p}/login?next={}\">Sign in to act</a>",
                enc(frame.here)
            );
        }
        Access::SignedIn => {
            let _ = writeln!(
                out,
                "    <form method=\"post\" action=\"{p}/logout\" class=\"inline\"><input type=\"hidden\" name=\"_csrf\" value=\"{csrf}\"><span class=\"pill pill-ok\">signed in</span> <button class=\"btn btn-small btn-ghost\" type=\"submit\">Sign out</button></form>",
                csrf = esc(frame.csrf)
            );
        }
        Access::Layer => out.push_str("    <span class=\"pill pill-ok\">actions on</span>\n"),
    }
    out.push_str("  </div>\n</header>\n<div class=\"shell\">\n<aside class=\"side\">\n  <div class=\"side-title\">Queues</div>\n  <ul class=\"side-list\">\n");
    if frame.queues.is_empty() {
        out.push_str("    <li class=\"muted small\">none yet</li>\n");
    }
    for (name, failed, paused) in frame.queues {
        let on = if frame.current_queue == Some(name.as_str()) {
            " class=\"on\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    <li><a href=\"{p}/queues/{}\"{on}><span class=\"side-name\">{}</span>{}<span class=\"side-failed{}\" data-count=\"{}/failed\" title=\"failed\">{}</span></a></li>",
            enc(name),
            esc(name),
            if *paused {
                "<span class=\"badge badge-paused\">paused</span>"
            } else {
                ""
            },
            if *failed == 0 { " zero" } else { "" },
            esc(name),
            num(*failed)
        );
    }
    out.push_str("  </ul>\n</aside>\n<main class=\"main\">\n");
    if let Some(flash) = &frame.flash {
        let _ = writeln!(
            out,
            "<div class=\"flash {}\" role=\"status\">{}</div>",
            if flash.ok { "flash-ok" } else { "flash-error" },
            esc(&flash.text)
        );
    }
    out.push_str(body);
    let _ = write!(
        out,
        "</main>\n</div>\n<footer class=\"footer\">athyper {v} · <span id=\"updated\">rendered {}</span></footer>\n</body>\n</html>\n",
        clock(SystemTime::now())
    );
    out
}

/// A state's badge.
pub(crate) fn state_badge(state: JobState) -> String {
    format!(
        "<span class=\"badge badge-{s}\">{s}</span>",
        s = state.as_str()
    )
}

/// `1234567` as `1,234,567`.
pub(crate) fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `HH:MM:SS` in UTC.
pub(crate) fn clock(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    text.get(11..19).unwrap_or(&text).to_owned()
}

/// A short span: `42s`, `3m`, `5h`, `2d`.
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// A `<time>` saying `3m ago` or `in 5m`, the exact time on hover.
pub(crate) fn when(t: SystemTime, now: SystemTime) -> String {
    let exact = humantime::format_rfc3339_millis(t).to_string();
    let text = match now.duration_since(t) {
        Ok(ago) if ago < Duration::from_secs(1) => "just now".to_owned(),
        Ok(ago) => format!("{} ago", short(ago)),
        Err(ahead) => format!("in {}", short(ahead.duration())),
    };
    format!("<time datetime=\"{exact}\" title=\"{exact}\">{text}</time>")
}

/// `when`, or a dash.
pub(crate) fn when_opt(t: Option<SystemTime>, now: SystemTime) -> String {
    t.map_or_else(
        || "<span class=\"muted\">—</span>".to_owned(),
        |t| when(t, now),
    )
}

/// The first line of `text`, at most `max` characters, escaped.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut cut: String = line.chars().take(max).collect();
    if cut.len() < line.len() || text.lines().nth(1).is_some() {
        cut.push('…');
    }
    esc(&cut).to_string()
}

/// An empty state: a sentence in a box.
pub(crate) fn empty(text: &str) -> String {
    format!("<div class=\"empty\">{}</div>", esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(enc("order-1_2.3~"), "order-1_2.3~");
    }

    #[test]
    fn numbers_and_spans_read_well() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1_000), "1,000");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(short(Duration::from_secs(59)), "59s");
        assert_eq!(short(Duration::from_secs(61)), "1m");
        assert_eq!(short(Duration::from_secs(3_700)), "1h 1m");
        assert_eq!(short(Duration::from_secs(90_000)), "1d 1h");
    }

    #[test]
    fn snippets_cut_and_escape() {
        assert_eq!(
            snippet("<b>boom</b>\nat line 2", 100),
            "&lt;b&gt;boom&lt;/b&gt;…"
        );
        assert_eq!(snippet("abcdef", 3), "abc…");
        assert_eq!(snippet("abc", 3), "abc");
    }
}
