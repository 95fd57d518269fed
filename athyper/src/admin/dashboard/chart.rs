//! The throughput chart: completed and failed jobs per minute, drawn on the
//! server as inline SVG (styled by the stylesheet, so no inline styles).

use std::fmt::Write as _;

use super::html::num;
use crate::admin::MinuteView;

const WIDTH: f64 = 1040.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

/// The top of the scale: four times a "round" step (1, 2 or 5 times a
/// power of ten), so that the four grid lines fall on whole numbers.
fn nice_ceiling(peak: u64) -> u64 {
    let quarter = peak.div_ceil(4).max(1);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step * m >= quarter {
                return step * m * 4;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A bar chart of `minutes` (oldest first); `label` names it for screen
/// readers.
pub(crate) fn throughput(minutes: &[MinuteView], label: &str) -> String {
    let mut svg = String::with_capacity(minutes.len() * 200 + 1024);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let peak = minutes
        .iter()
        .map(|m| m.completed + m.failed)
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(peak);
    let y = |v: u64| TOP + plot_h - plot_h * (v as f64) / (top as f64);
    let completed: u64 = minutes.iter().map(|m| m.completed).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}: {c} completed, {f} failed"><title>{label}: {c} completed, {f} failed</title>"#,
        label = super::html::esc(label),
        c = num(completed),
        f = num(failed),
    );
    for i in 0..=4u64 {
        let v = top * i / 4;
        let gy = y(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{gy:.1}" y2="{gy:.1}"/><text class="axis" x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text>"#,
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = gy + 3.5,
            v = num(v),
        );
    }
    let n = minutes.len().max(1);
    let slot = plot_w / n as f64;
    let bar = (slot * 0.72).max(1.0);
    for (i, m) in minutes.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let at =
            humantime::format_rfc3339_seconds(crate::queue::time::from_millis(m.at_ms)).to_string();
        let hhmm = at.get(11..16).unwrap_or(&at).to_owned();
        let _ = write!(
            svg,
            r#"<g class="slot"><title>{hhmm} UTC: {c} completed, {f} failed</title><rect class="hit" x="{hx:.1}" y="{TOP}" width="{slot:.1}" height="{plot_h}"/>"#,
            c = num(m.completed),
            f = num(m.failed),
            hx = LEFT + slot * i as f64,
        );
        if m.completed > 0 {
            let y0 = y(m.completed);
            let _ = write!(
                svg,
                r#"<rect class="bar-completed" x="{x:.1}" y="{y0:.1}" width="{bar:.1}" height="{h:.1}" rx="1"/>"#,
                h = TOP + plot_h - y0,
            );
        }
        if m.failed > 0 {
            let y1 = y(m.completed + m.failed);
            let _ = write!(
                svg,
                r#"<rect class="bar-failed" x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{h:.1}" rx="1"/>"#,
                h = y(m.completed) - y1,
            );
        }
        svg.push_str("</g>");
        // A label every quarter of the span, and at its end.
        let from_end = n - 1 - i;
        if n >= 4 && from_end.is_multiple_of((n / 4).max(1)) {
            let text = if from_end == 0 {
                "now".to_owned()
            } else {
                format!("−{from_end}m")
            };
            let _ = write!(
                svg,
                r#"<text class="axis" x="{tx:.1}" y="{ty}" text-anchor="middle">{text}</text>"#,
                tx = LEFT + slot * (i as f64 + 0.5),
                ty = HEIGHT - 6.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Sums the minutes of several queues, aligned by minute.
pub(crate) fn sum(series: &[Vec<MinuteView>], minutes: usize) -> Vec<MinuteView> {
    let mut by_minute = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    for s in series {
        for m in s {
            let e = by_minute.entry(m.at_ms).or_default();
            e.0 += m.completed;
            e.1 += m.failed;
        }
    }
    let skip = by_minute.len().saturating_sub(minutes);
    by_minute
        .into_iter()
        .skip(skip)
        .map(|(at_ms, (completed, failed))| MinuteView {
            at_ms,
            completed,
            failed,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(at_ms: u64, completed: u64, failed: u64) -> MinuteView {
        MinuteView {
            at_ms,
            completed,
            failed,
        }
    }

    #[test]
    fn scales_to_a_round_top() {
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(7), 8);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(54), 80);
        assert_eq!(nice_ceiling(130), 200);
        assert_eq!(nice_ceiling(501), 800);
    }

    #[test]
    fn draws_a_bar_per_busy_minute_with_a_tooltip() {
        let minutes: Vec<_> = (0..60)
            .map(|i| minute(i * 60_000, if i == 59 { 12 } else { 0 }, u64::from(i == 58)))
            .collect();
        let svg = throughput(&minutes, "All queues");
        assert_eq!(svg.matches("class=\"bar-completed\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar-failed\"").count(), 1);
        assert!(svg.contains("00:59 UTC: 12 completed, 0 failed"), "{svg}");
        assert!(svg.contains(">now</text>"));
        assert!(svg.contains("All queues: 12 completed, 1 failed"));
    }

    #[test]
    fn sums_queues_by_minute() {
        let a = vec![minute(0, 1, 0), minute(60_000, 2, 1)];
        let b = vec![minute(60_000, 3, 0), minute(120_000, 1, 1)];
        let s = sum(&[a, b], 2);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].at_ms, s[0].completed, s[0].failed), (60_000, 5, 1));
        assert_eq!((s[1].at_ms, s[1].completed, s[1].failed), (120_000, 1, 1));
    }
}
