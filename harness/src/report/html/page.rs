//! The HTML pages, as pure functions from results to text: a page per
//! scenario (status, reasons, the sequence diagram, the verdicts, the
//! normalized trace and the full event log), the run's index (a summary
//! table) and the matrix index (scenario × broker, every cell linking to
//! its page). Static: no script, no external asset, the styles inline, so
//! a page opens from disk and can be archived as it is.

use std::fmt::Write;

use super::svg::{self, esc};
use crate::report::events::{label, status_name, status_reason, Totals};
use crate::report::{describe, Finished};

const CSS: &str = "<style>\
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}\
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f4f7}\
.passed{background:#dff3df}.failed,.error{background:#fbd9d5}.skipped{background:#eee}.deviation{background:#fdf0c8}\
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;font-weight:bold}\
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}pre.failed,pre.error,pre.deviation,pre.skipped{white-space:pre-wrap}\
.diagram{overflow-x:auto;border:1px solid #ddd;padding:4px;background:#fff}\
tr.offending td{background:#fbd9d5;color:#b00;font-weight:bold}\
td.num{text-align:right;font-family:monospace}td.mono{font-family:monospace;white-space:pre-wrap}\
a{color:#1a56a8}.legend{font-size:.9em;color:#444;max-width:70em}\
</style>";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>{CSS}</head><body>\n",
        esc(title)
    )
}

fn badge(status: &crate::runner::Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_name(status),
        label(status)
    )
}

/// One scenario's page. `index_href` leads back to the run's index.
pub fn scenario(f: &Finished, index_href: &str) -> String {
    let o = &f.outcome;
    let offending = f.offending_events();
    let mut out = head(&format!("{} — {}", o.id, f.broker));
    let _ = write!(
        out,
        "<p><a href=\"{}\">← all scenarios</a></p>\n<h1>{} {}</h1>\n<p>{}</p>\n",
        esc(index_href),
        badge(&o.status),
        esc(&o.id),
        esc(&o.name)
    );
    let _ = writeln!(
        out,
        "<table><tr><th>broker</th><td>{}</td></tr><tr><th>file</th><td>{}</td></tr><tr><th>duration</th><td>{:.2}s</td></tr><tr><th>events</th><td>{}</td></tr></table>",
        esc(&f.broker),
        esc(&o.path.display().to_string()),
        o.duration.as_secs_f64(),
        o.history.events.len()
    );
    let reasons = o.failure_text();
    if !reasons.is_empty() {
        let _ = write!(
            out,
            "<h2>Why</h2>\n<pre class=\"{}\">{}</pre>\n",
            status_name(&o.status),
            esc(&reasons)
        );
    }
    out += "<h2>Sequence diagram</h2>\n<p class=\"legend\">One row per recorded event, in order (the left column gives its number and time; click a row for the event log). Arrows are MQTT packets with their key fields; one that stops at a proxy under <b style=\"color:#d10\">✕</b> was dropped there, at a <b>□</b> held there (its release starts from it), a double head means duplicated. Bands: <span style=\"background:#fde7c4\">faults</span>, <span style=\"background:#d6e8f8\">broker</span> and <span style=\"background:#e4dcf5\">board</span> events. <b style=\"color:#d10\">Red</b>: the events a failed checker or expectation names.</p>\n<div class=\"diagram\">";
    out += &svg::diagram(&o.history, &offending);
    out += "</div>\n<h2>Verdicts</h2>\n<table><tr><th>checker</th><th>verdict</th><th>what</th></tr>\n";
    for v in &o.verdicts {
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>",
            if v.ok() { "passed" } else { "failed" },
            esc(&v.checker),
            if v.ok() { "ok" } else { "FAILED" }
        );
        for viol in &v.violations {
            let evs: Vec<String> = viol
                .events
                .iter()
                .map(|s| format!("<a href=\"#e{s}\">#{s}</a>"))
                .collect();
            let _ = write!(
                out,
                "<div><b>[{}]</b> {} (events {})</div>",
                esc(&viol.rule),
                esc(&viol.message),
                evs.join(", ")
            );
        }
        for n in &v.notes {
            let _ = write!(out, "<div>note: {}</div>", esc(n));
        }
        out += "</td></tr>\n";
    }
    out += "</table>\n";
    if !o.failures.is_empty() {
        out += "<h2>Failed steps</h2>\n<table><tr><th>step</th><th>line</th><th>what</th></tr>\n";
        for s in &o.failures {
            let _ = writeln!(
                out,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                s.step,
                s.line,
                esc(&s.message)
            );
        }
        out += "</table>\n";
    }
    let _ = write!(
        out,
        "<h2>Normalized trace</h2>\n<pre>{}</pre>\n",
        esc(&f.trace)
    );
    out += "<h2>Event log</h2>\n<table><tr><th>#</th><th>time</th><th>event</th></tr>\n";
    for ev in &o.history.events {
        let _ = writeln!(
            out,
            "<tr id=\"e{seq}\"{class}><td class=\"num\">{seq}</td><td class=\"num\">+{t:.3}s</td><td class=\"mono\">{text}</td></tr>",
            seq = ev.seq,
            class = if offending.contains(&ev.seq) {
                " class=\"offending\""
            } else {
                ""
            },
            t = ev.at.as_secs_f64(),
            text = esc(&describe::event(&ev.kind))
        );
    }
    out += "</table>\n</body></html>\n";
    out
}

/// A row of the run's index.
#[derive(Clone, Debug)]
pub struct IndexRow {
    pub id: String,
    pub name: String,
    pub broker: String,
    pub status: crate::runner::Status,
    pub duration_secs: f64,
    /// The first reason it did not pass, if any.
    pub reason: Option<String>,
    /// The scenario page, relative to the index.
    pub href: String,
    /// Which run of the scenario (`--repeat`), from 1, of how many.
    pub attempt: (usize, usize),
    /// Set on every run of a scenario whose runs disagree: why it is FLAKY.
    pub flaky: Option<String>,
}

impl IndexRow {
    pub fn of(f: &Finished, href: String) -> IndexRow {
        let o = &f.outcome;
        let reason = status_reason(&o.status)
            .map(str::to_string)
            .or_else(|| o.failure_text().lines().next().map(str::to_string))
            .filter(|r| !r.is_empty());
        IndexRow {
            id: o.id.clone(),
            name: o.name.clone(),
            broker: f.broker.clone(),
            status: o.status.clone(),
            duration_secs: o.duration.as_secs_f64(),
            reason,
            href,
            attempt: (f.attempt, f.attempts),
            flaky: None,
        }
    }

    /// The status cell: FLAKY over the run's own status when the runs
    /// disagree.
    fn cell(&self) -> (&'static str, &'static str, Option<&str>) {
        match &self.flaky {
            Some(why) => ("failed", "FLAKY", Some(why.as_str())),
            None => (
                status_name(&self.status),
                label(&self.status),
                self.reason.as_deref(),
            ),
        }
    }

    fn title(&self) -> String {
        match self.attempt {
            (_, 1) => self.id.clone(),
            (k, n) => format!("{} (run {k}/{n})", self.id),
        }
    }
}

fn totals_line(rows: &[IndexRow]) -> String {
    let mut t = Totals::default();
    for r in rows {
        t.add(&r.status);
    }
    format!(
        "<p>{} passed ({} known deviations), {} failed ({} errors), {} skipped</p>\n",
        t.passed, t.deviations, t.failed, t.errors, t.skipped
    )
}

/// The index of a run against one broker: one row per scenario.
pub fn index(title: &str, rows: &[IndexRow]) -> String {
    let mut out = head(title);
    let _ = writeln!(out, "<h1>{}</h1>", esc(title));
    out += &totals_line(rows);
    out += "<table><tr><th>status</th><th>scenario</th><th>broker</th><th>time</th><th>why</th></tr>\n";
    for r in rows {
        let (cls, label, why) = r.cell();
        let _ = writeln!(
            out,
            "<tr><td class=\"{cls}\">{label}</td><td><a href=\"{href}\">{id}</a><br><small>{name}</small></td><td>{broker}</td><td class=\"num\">{d:.1}s</td><td>{why}</td></tr>",
            href = esc(&r.href),
            id = esc(&r.title()),
            name = esc(&r.name),
            broker = esc(&r.broker),
            d = r.duration_secs,
            why = esc(why.unwrap_or(""))
        );
    }
    out += "</table>\n</body></html>\n";
    out
}

/// The index of a matrix run: a row per scenario, a column per broker (in
/// the order given), each cell the status linking to its scenario page.
pub fn matrix_index(title: &str, brokers: &[String], rows: &[IndexRow]) -> String {
    let mut out = head(title);
    let _ = writeln!(out, "<h1>{}</h1>", esc(title));
    out += &totals_line(rows);
    out += "<table><tr><th>scenario</th>";
    for b in brokers {
        let _ = write!(out, "<th>{}</th>", esc(b));
    }
    out += "</tr>\n";
    let mut ids: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !ids.iter().any(|(id, _)| *id == r.id) {
            ids.push((&r.id, &r.name));
        }
    }
    for (id, name) in ids {
        let _ = write!(
            out,
            "<tr><td>{}<br><small>{}</small></td>",
            esc(id),
            esc(name)
        );
        for b in brokers {
            match rows.iter().find(|r| r.id == id && &r.broker == b) {
                Some(r) => {
                    let (cls, label, why) = r.cell();
                    let _ = write!(
                        out,
                        "<td class=\"{cls}\"><a href=\"{}\" title=\"{}\">{label}</a></td>",
                        esc(&r.href),
                        esc(why.unwrap_or("")),
                    );
                }
                None => out += "<td>—</td>",
            }
        }
        out += "</tr>\n";
    }
    out += "</table>\n</body></html>\n";
    out
}
