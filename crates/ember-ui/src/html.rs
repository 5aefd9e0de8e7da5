//! The pages, rendered on the server as plain HTML (tables work with scripts off). A page's
//! changing part is a fragment of its own path; a ten-line script replaces it when the server
//! says something changed (server-sent events), so the page updates without a reload.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::dashboard::{Board, View};
use crate::format::{duration, esc, opt_duration, page_date};
use crate::store::{Batch, Status, Store};
use crate::svg;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#2c3e50;color:#fff;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}\
main{padding:8px 16px}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right}.error{color:#b00}pre{margin:0;white-space:pre-wrap}\
.progress{display:inline-block;width:100px;height:10px;background:#ddd}.progress span{display:block;height:10px;background:#5cb85c}";

/// The script that keeps `#live` current: on each server-sent event it fetches the fragment.
const LIVE: &str = "<script>(function(){var el=document.getElementById('live');\
if(!el||!window.EventSource||!window.fetch)return;var q=location.search;\
var src=new EventSource(el.dataset.events+q);src.onmessage=function(){\
fetch(el.dataset.fragment+q).then(function(r){return r.ok?r.text():null}).then(function(h){\
if(h!==null){el.innerHTML=h;el.dataset.updates=(+(el.dataset.updates||0))+1;}})};})();</script>";

/// A whole page: navigation, the live fragment and the script.
pub fn page(title: &str, app: &str, fragment_path: &str, events_path: &str, body: &str, kill: bool) -> String {
    let kill = if kill {
        r#"<form method="post" action="/streaming/kill" style="display:inline"><button onclick="return confirm('Stop the job?')">kill</button></form>"#
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - {a}</title><style>{STYLE}</style></head>\
<body><nav><b>Ember</b> · {a} &nbsp; <a href=\"/streaming/\">Streaming</a><a href=\"/dashboard\">Dashboards</a>\
<a href=\"/api/v1/applications\">API</a><a href=\"/metrics\">Metrics</a>{kill}</nav>\
<main><div id=\"live\" data-fragment=\"{f}\" data-events=\"{e}\">{body}</div></main>{LIVE}</body></html>",
        t = esc(title),
        a = esc(app),
        f = esc(fragment_path),
        e = esc(events_path),
    )
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The Streaming page's changing part.
pub fn streaming(s: &Store, now: u64) -> String {
    let mut h = String::new();
    let completed: Vec<&Batch> = s.completed().collect();
    let start = s.started.unwrap_or(s.attached);
    let _ = write!(
        h,
        "<h3>Streaming Statistics</h3><p id=\"summary\">Running batches of <b>{}</b> for <b>{}</b> since <b>{}</b> \
(<b id=\"completed-count\">{}</b> completed batches, <b id=\"record-count\">{}</b> records)</p>",
        duration(s.batch_ms),
        duration(now.saturating_sub(start)),
        page_date(start),
        s.completed_total,
        s.received_total
    );
    // Timelines and histograms.
    let rates: Vec<(u64, f64)> = completed.iter().map(|b| (b.time(), s.rate(b.info.num_records()))).collect();
    let delay = |f: fn(&Batch) -> Option<u64>| -> Vec<(u64, f64)> {
        completed.iter().filter_map(|b| f(b).map(|v| (b.time(), v as f64))).collect()
    };
    let sched = delay(|b| b.info.scheduling_delay());
    let proc = delay(|b| b.info.processing_delay());
    let total = delay(|b| b.info.total_delay());
    // The three delay charts share one range, as on Spark's page.
    let delay_max = sched.iter().chain(&proc).chain(&total).map(|p| p.1).fold(s.batch_ms as f64, f64::max);
    let active_receivers = s.receivers.values().filter(|r| r.active).count();
    let _ = write!(
        h,
        "<table id=\"stat-table\"><thead><tr><th></th><th>Timelines (Last {} batches, {} active, {} completed)</th><th>Histograms</th></tr></thead><tbody>",
        completed.len(),
        s.active().count(),
        s.completed_total
    );
    let avg = |v: &[(u64, f64)], unit: &str| {
        mean(&v.iter().map(|p| p.1).collect::<Vec<_>>()).map_or_else(|| "-".to_owned(), |m| format!("{m:.2} {unit}"))
    };
    let rows: [(&str, &str, String, &Vec<(u64, f64)>, &str, Option<f64>, Option<f64>); 4] = [
        (
            "input-rate",
            "Input Rate",
            format!("{} / {} receivers active", active_receivers, s.receivers.len()),
            &rates,
            "records/sec",
            None,
            None,
        ),
        (
            "scheduling-delay",
            "Scheduling Delay",
            "time to wait for the previous batch".into(),
            &sched,
            "ms",
            None,
            Some(delay_max),
        ),
        (
            "processing-time",
            "Processing Time",
            "time to run the batch's steps and outputs".into(),
            &proc,
            "ms",
            Some(s.batch_ms as f64),
            Some(delay_max),
        ),
        ("total-delay", "Total Delay", "time to handle the batch".into(), &total, "ms", None, Some(delay_max)),
    ];
    for (id, name, note, points, unit, reference, y_max) in rows {
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let _ = write!(
            h,
            "<tr id=\"{id}-row\"><td><b>{name}</b><br><small>{}</small><br>Avg: <span class=\"avg\">{}</span></td><td>{}</td><td>{}</td></tr>",
            esc(&note),
            avg(points, unit),
            svg::timeline(&format!("{id}-timeline"), points, unit, reference, y_max),
            svg::histogram(&format!("{id}-histogram"), &values, unit, y_max),
        );
    }
    h.push_str("</tbody></table>");
    inputs(&mut h, s);
    plan(&mut h, s);
    let running: Vec<&Batch> = s.batches.values().rev().filter(|b| b.status == Status::Processing).collect();
    let waiting: Vec<&Batch> = s.batches.values().rev().filter(|b| b.status == Status::Queued).collect();
    batch_table(&mut h, s, "running-batches", &format!("Running Batches ({})", running.len()), &running, true);
    batch_table(&mut h, s, "waiting-batches", &format!("Waiting Batches ({})", waiting.len()), &waiting, true);
    let done: Vec<&Batch> = completed.iter().rev().copied().collect();
    batch_table(
        &mut h,
        s,
        "completed-batches",
        &format!("Completed Batches (last {} out of {})", done.len(), s.completed_total),
        &done,
        false,
    );
    h
}

/// The input streams: what they read, their receivers, their rates.
fn inputs(h: &mut String, s: &Store) {
    h.push_str(
        "<h4>Input streams</h4><table id=\"inputs\"><thead><tr><th>Input</th><th>Reads</th><th>Status</th><th>Location</th>\
<th>Rate limit</th><th>Last Error Time</th><th>Last Error Message</th><th>Input rate</th></tr></thead><tbody>",
    );
    for input in &s.plan.inputs {
        let r = s.receivers.get(&input.id);
        let rates = s.stream_rates(input.id);
        let limit = s
            .completed()
            .next_back()
            .and_then(|b| b.info.stream_input_info.iter().find(|i| i.input_stream_id == input.id))
            .and_then(|i| i.rate_limit)
            .or_else(|| r.and_then(|r| r.rate_limit));
        let (status, location, err_time, err) = match r {
            Some(r) => (
                if r.active { "ACTIVE" } else { "INACTIVE" },
                format!("worker-{} / {}", r.worker, s.host_of(r.worker)),
                r.last_error_time.map_or_else(|| "-".to_owned(), page_date),
                r.last_error_message.chars().take(100).collect::<String>(),
            ),
            None => ("-", "-".to_owned(), "-".to_owned(), String::new()),
        };
        let _ = write!(
            h,
            "<tr class=\"input\" data-stream=\"{}\"><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td><td>{}</td></tr>",
            input.id,
            esc(&input.name),
            esc(&input.source),
            esc(&location),
            limit.map_or_else(|| "-".to_owned(), |l| format!("{l:.0} records/sec")),
            err_time,
            esc(&err),
            svg::timeline(&format!("input-{}-rate", input.id), &rates, "records/sec", None, None)
        );
    }
    h.push_str("</tbody></table>");
}

/// The DStream graph as a picture: inputs on the left, outputs on the right, one box per
/// operation with its slide (and window).
fn plan(h: &mut String, s: &Store) {
    let nodes = &s.plan.nodes;
    if nodes.is_empty() {
        return;
    }
    // Node ids to positions (the view leaves internal nodes out, so ids have gaps).
    let at: BTreeMap<usize, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    // Column of each node: the longest path from an input (parents come first).
    let mut col = vec![0usize; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        col[i] = n.parents.iter().filter_map(|p| at.get(p)).filter(|&&p| p < i).map(|&p| col[p] + 1).max().unwrap_or(0);
    }
    let out_col = col.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut place = |c: usize| {
        let r = rows.entry(c).or_insert(0);
        *r += 1;
        *r - 1
    };
    let pos: Vec<(usize, usize)> = col.iter().map(|&c| (c, place(c))).collect();
    let out_pos: Vec<(usize, usize)> = s.plan.outputs.iter().map(|_| (out_col, place(out_col))).collect();
    let (bw, bh, gx, gy) = (170.0, 54.0, 40.0, 14.0);
    // Records in and out of each operation in the last completed batch.
    let last = s.completed().next_back();
    let out_of = |id: usize| last.and_then(|b| b.info.operation_records.get(&id).copied()).unwrap_or(0);
    let xy = |(c, r): (usize, usize)| (10.0 + c as f64 * (bw + gx), 10.0 + r as f64 * (bh + gy));
    let height = 20.0 + rows.values().copied().max().unwrap_or(1) as f64 * (bh + gy);
    let width = 20.0 + (out_col + 1) as f64 * (bw + gx);
    let _ = write!(
        h,
        "<h4>Plan</h4><p>Records in and out of each operation in the last completed batch{}.</p><svg id=\"plan\" data-nodes=\"{}\" data-outputs=\"{}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">",
        last.map_or_else(String::new, |b| format!(" ({})", page_date(b.time()))),
        nodes.len(),
        s.plan.outputs.len()
    );
    let edge = |h: &mut String, from: (usize, usize), to: (usize, usize)| {
        let ((x1, y1), (x2, y2)) = (xy(from), xy(to));
        let _ = write!(
            h,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" stroke=\"#999\"/>",
            x1 + bw,
            y1 + bh / 2.0,
            y2 + bh / 2.0
        );
    };
    for (i, n) in nodes.iter().enumerate() {
        for p in n.parents.iter().filter_map(|p| at.get(p)) {
            edge(h, pos[*p], pos[i]);
        }
    }
    for (o, out) in s.plan.outputs.iter().enumerate() {
        if let Some(&n) = at.get(&out.node) {
            edge(h, pos[n], out_pos[o]);
        }
    }
    let boxed = |h: &mut String,
                 class: &str,
                 at: (usize, usize),
                 name: &str,
                 detail: &str,
                 records: &str,
                 fill: &str| {
        let (x, y) = xy(at);
        let _ = write!(
            h,
            "<g class=\"{class}\"><rect x=\"{x}\" y=\"{y}\" width=\"{bw}\" height=\"{bh}\" rx=\"5\" fill=\"{fill}\" stroke=\"#777\"/>\
<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#555\">{}</text>\
<text class=\"records\" x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">{}</text></g>",
            x + bw / 2.0,
            y + 16.0,
            esc(name),
            x + bw / 2.0,
            y + 30.0,
            esc(detail),
            x + bw / 2.0,
            y + 45.0,
            esc(records)
        );
    };
    for (i, n) in nodes.iter().enumerate() {
        let detail = match n.window_ms {
            Some(w) => format!("window {} / slide {}", duration(w), duration(n.slide_ms)),
            None => format!("every {}", duration(n.slide_ms)),
        };
        let fill = if n.parents.is_empty() { "#dff0d8" } else { "#eef5fb" };
        let records = if n.parents.is_empty() {
            format!("out {}", out_of(n.id))
        } else {
            format!("in {} · out {}", n.parents.iter().map(|&p| out_of(p)).sum::<u64>(), out_of(n.id))
        };
        boxed(h, "plan-node", pos[i], &n.name, &detail, &records, fill);
    }
    for (o, out) in s.plan.outputs.iter().enumerate() {
        let every = format!("every {}", duration(out.slide_ms));
        let records = format!("in {}", out_of(out.node));
        boxed(h, "plan-output", out_pos[o], &format!("{o}: {}", out.name), &every, &records, "#fcf0e0");
    }
    h.push_str("</svg>");
}

fn batch_table(h: &mut String, s: &Store, id: &str, title: &str, batches: &[&Batch], active: bool) {
    let failed = batches.iter().any(|b| b.first_failure().is_some());
    let _ = write!(
        h,
        "<h4>{}</h4><table id=\"{id}\"><thead><tr><th>Batch Time</th><th>Records</th><th>Scheduling Delay</th><th>Processing Time</th>",
        esc(title)
    );
    h.push_str(if active {
        "<th>Output Ops: Succeeded/Total</th><th>Status</th>"
    } else {
        "<th>Total Delay</th><th>Output Ops: Succeeded/Total</th>"
    });
    if failed {
        h.push_str("<th>Error</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for b in batches {
        let total = b.ops.len().max(s.ops_due(b.time()));
        let ok = b.completed_ops() - b.failed_ops();
        let pct = (ok * 100).checked_div(total).unwrap_or(100);
        let ops = format!("<span class=\"progress\"><span style=\"width:{pct}%\"></span></span> {ok}/{total}");
        let _ = write!(
            h,
            "<tr class=\"batch\" data-batch=\"{t}\"><td><a href=\"/streaming/batch/?id={t}\">{}</a></td><td class=\"num\">{} records</td><td>{}</td><td>{}</td>",
            page_date(b.time()),
            b.info.num_records(),
            opt_duration(b.info.scheduling_delay()),
            opt_duration(b.info.processing_delay()),
            t = b.time()
        );
        if active {
            let _ = write!(
                h,
                "<td>{ops}</td><td>{}</td>",
                if b.status == Status::Queued { "queued" } else { "processing" }
            );
        } else {
            let _ = write!(h, "<td>{}</td><td>{ops}</td>", opt_duration(b.info.total_delay()));
        }
        if failed {
            let _ = write!(h, "<td class=\"error\">{}</td>", esc(b.first_failure().unwrap_or("")));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
}

/// The batch page's changing part, or `None` for a batch the UI does not hold.
pub fn batch(s: &Store, t: u64) -> Option<String> {
    let b = s.batches.get(&t)?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<h3>Details of batch at {}</h3><ul id=\"batch-summary\"><li><b>Batch Duration:</b> {}</li><li><b>Input data size:</b> {} records</li>\
<li><b>Scheduling delay:</b> {}</li><li><b>Processing time:</b> {}</li><li><b>Total delay:</b> {}</li><li><b>Status:</b> {}</li></ul>",
        page_date(t),
        duration(s.batch_ms),
        b.info.num_records(),
        opt_duration(b.info.scheduling_delay()),
        opt_duration(b.info.processing_delay()),
        opt_duration(b.info.total_delay()),
        b.status.api()
    );
    h.push_str("<h4>Input Metadata</h4><table id=\"input-metadata\"><thead><tr><th>Input</th><th>Records</th><th>Rate limit</th><th>Metadata</th></tr></thead><tbody>");
    for i in &b.info.stream_input_info {
        let name = s
            .plan
            .inputs
            .get(i.input_stream_id)
            .map_or_else(|| format!("input {}", i.input_stream_id), |x| x.name.clone());
        let meta: String = i
            .metadata
            .iter()
            .map(|(k, v)| {
                format!("<div class=\"meta\" data-key=\"{}\"><b>{}</b><pre>{}</pre></div>", esc(k), esc(k), esc(v))
            })
            .collect();
        let _ = write!(
            h,
            "<tr class=\"input\" data-stream=\"{}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            i.input_stream_id,
            esc(&name),
            i.num_records,
            i.rate_limit.map_or_else(|| "-".to_owned(), |l| format!("{l:.0} records/sec")),
            meta
        );
    }
    h.push_str("</tbody></table><h4>Output Operations</h4><table id=\"output-ops\"><thead><tr><th>Output Op Id</th><th>Description</th><th>Output Op Duration</th><th>Status</th><th>Error</th></tr></thead><tbody>");
    for (id, o) in &b.ops {
        let status = match (&o.failure_reason, o.end_time) {
            (Some(_), _) => "Failed",
            (None, Some(_)) => "Succeeded",
            (None, None) => "Running",
        };
        let _ = write!(
            h,
            "<tr class=\"op\" data-op=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{status}</td><td class=\"error\"><pre>{}</pre></td></tr>",
            esc(&s.op_description(*id)),
            opt_duration(o.duration()),
            esc(o.failure_reason.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table>");
    Some(h)
}

/// The dashboards' index.
pub fn dashboards(boards: &BTreeMap<String, (usize, Option<Board>)>) -> String {
    let mut h = String::from("<h3>Dashboards</h3><ul id=\"dashboards\">");
    for (name, (_, b)) in boards {
        let _ = write!(
            h,
            "<li><a href=\"/dashboard/{}\">{}</a> {}</li>",
            esc(&encode(name)),
            esc(name),
            b.as_ref()
                .and_then(|b| b.batch)
                .map_or_else(|| "(no batch yet)".to_owned(), |t| format!("(batch {})", page_date(t.millis())))
        );
    }
    if boards.is_empty() {
        h.push_str("<li>No dashboards: add one with <code>stream.dashboard(\"name\")</code>.</li>");
    }
    h.push_str("</ul>");
    h
}

/// One dashboard's changing part.
pub fn dashboard(name: &str, board: Option<&Board>) -> String {
    let mut h = format!("<h2>{}</h2>", esc(name));
    let Some(b) = board else {
        h.push_str("<p id=\"board-batch\">Waiting for the first batch.</p>");
        return h;
    };
    let _ = write!(
        h,
        "<p id=\"board-batch\" data-batch=\"{}\" data-updates=\"{}\">Batch {} · {} records</p>",
        b.batch.map_or(0, |t| t.millis()),
        b.updates,
        b.batch.map_or_else(String::new, |t| page_date(t.millis())),
        b.records
    );
    match &b.view {
        View::Bars(rows) => h.push_str(&svg::bars(rows)),
        View::Table(cols, rows) => {
            h.push_str("<table id=\"board-table\"><thead><tr>");
            for c in cols {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr></thead><tbody>");
            for r in rows {
                h.push_str("<tr>");
                for c in r {
                    let _ = write!(h, "<td>{}</td>", esc(c));
                }
                h.push_str("</tr>");
            }
            h.push_str("</tbody></table>");
        }
    }
    h
}

/// A dashboard name as a path segment.
pub fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
