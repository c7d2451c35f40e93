//! The predicted timeline as a Gantt chart: a standalone SVG, or an HTML page with the
//! chart and the table. Written by hand: a few rectangles and labels do not justify a
//! plotting dependency, and the output stays byte-for-byte reproducible.

use std::fmt::Write as _;

use kup_engine::timeline::{TimedStep, Timeline};

const LABEL_W: f64 = 420.0;
const CHART_W: f64 = 760.0;
const ROW_H: f64 = 22.0;
const TOP: f64 = 48.0;

/// An SVG document with one bar per step that ran and an axis in hours and minutes.
pub fn svg(t: &Timeline, title: &str) -> String {
    let rows: Vec<&TimedStep> = t.steps.iter().collect();
    let height = TOP + ROW_H * rows.len() as f64 + 40.0;
    let width = LABEL_W + CHART_W + 20.0;
    let total = t.total_secs.max(1.0);
    let x = |secs: f64| LABEL_W + secs / total * CHART_W;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12">"#
    );
    let _ = writeln!(s, "<title>{}</title>", esc(title));
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="20" font-size="14" font-weight="bold">{}</text>"##,
        esc(title)
    );
    // Axis: about eight ticks at a round step.
    let tick = tick_secs(total);
    let mut at = 0.0;
    while at <= total + 0.5 {
        let px = x(at);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#e5e7eb"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#6b7280">{}</text>"##,
            TOP - 6.0,
            TOP + ROW_H * rows.len() as f64,
            TOP - 10.0,
            clock(at)
        );
        at += tick;
    }
    for (i, step) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let label = format!("{} {}", step.id, step.description);
        let label: String = if label.chars().count() > 58 {
            label.chars().take(57).chain(['…']).collect()
        } else {
            label
        };
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.1}" fill="{}">{}</text>"##,
            y + 15.0,
            if step.outcome == "not_run" {
                "#9ca3af"
            } else {
                "#111827"
            },
            esc(&label)
        );
        if step.outcome == "not_run" {
            continue;
        }
        let w = (x(step.start_secs + step.duration_secs) - x(step.start_secs)).max(2.0);
        let tip = format!(
            "{}: {}\nstarts at {}, takes {}{}",
            step.id,
            step.description,
            clock(step.start_secs),
            clock(step.duration_secs),
            step.error
                .as_ref()
                .map(|e| format!("\nfailed: {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" rx="3" fill="{}"><title>{}</title></rect>"#,
            x(step.start_secs),
            y + 4.0,
            ROW_H - 8.0,
            colour(step),
            esc(&tip)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="10" y="{:.1}" fill="#374151">total {} · blue: provider and Kubernetes steps · green: post-flight · amber: wave soak and window · red: failed</text>"##,
        height - 14.0,
        clock(t.total_secs)
    );
    s.push_str("</svg>\n");
    s
}

/// An HTML page: the chart, then the steps as a table.
pub fn html(t: &Timeline, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:system-ui,sans-serif;margin:24px}}table{{border-collapse:collapse;font-size:13px}}td,th{{padding:3px 10px;border-bottom:1px solid #e5e7eb;text-align:left}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}.failed{{color:#b91c1c}}.not_run{{color:#9ca3af}}</style></head><body>",
        esc(title)
    );
    s.push_str(&svg(t, title));
    s.push_str("<table><thead><tr><th>step</th><th>what</th><th>starts</th><th>takes</th><th>planner's estimate</th><th>result</th></tr></thead><tbody>\n");
    for step in &t.steps {
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            step.outcome,
            esc(&step.id),
            esc(&step.description),
            clock(step.start_secs),
            clock(step.duration_secs),
            clock(step.estimated_secs as f64),
            esc(&match &step.error {
                Some(e) => format!("{}: {e}", step.outcome),
                None => step.outcome.to_string(),
            })
        );
    }
    let _ = writeln!(
        s,
        "</tbody></table><p>Total: {}</p></body></html>",
        clock(t.total_secs)
    );
    s
}

fn colour(step: &TimedStep) -> &'static str {
    match (step.outcome, step.kind) {
        ("failed", _) => "#dc2626",
        (_, "wave") => "#f59e0b",
        (_, "postflight") => "#16a34a",
        _ => "#2563eb",
    }
}

/// A round tick interval giving at most about eight ticks.
fn tick_secs(total: f64) -> f64 {
    const STEPS: &[f64] = &[
        60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| total / s <= 8.0)
        .unwrap_or_else(|| (total / 8.0 / 86400.0).ceil() * 86400.0)
}

/// `1d 2h`, `2h 05m`, `12m 30s`, `45s`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
