//! Charts drawn on the server as inline SVG: no script, no library, nothing fetched. Timelines
//! are 500×150 and histograms 350×150 with 10 bins, as on Spark's Streaming page.

use std::fmt::Write;

use crate::format::esc;

const W: f64 = 500.0;
const HW: f64 = 350.0;
const H: f64 = 150.0;
const PAD: f64 = 30.0;
/// Spark's `histogramBinCount`.
pub const BINS: usize = 10;

/// The y-axis top for values up to `max` (and a reference line, if any): never 0.
fn top(max: f64, reference: Option<f64>) -> f64 {
    let m = max.max(reference.unwrap_or(0.0));
    if m <= 0.0 {
        1.0
    } else {
        m * 1.1
    }
}

/// A timeline of `(time, value)` points, with an optional dashed reference line (the batch
/// interval on the processing-time chart, labelled "stable" as Spark's is). `unit` labels the
/// y axis; `y_max` shares one range among charts.
pub fn timeline(id: &str, points: &[(u64, f64)], unit: &str, reference: Option<f64>, y_max: Option<f64>) -> String {
    let max = y_max.unwrap_or_else(|| points.iter().map(|p| p.1).fold(0.0, f64::max));
    let top = top(max, reference);
    let (t0, t1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (a.0, b.0.max(a.0 + 1)),
        _ => (0, 1),
    };
    let x = |t: u64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / top * (H - 2.0 * PAD);
    let mut s = format!(
        r#"<svg class="timeline" id="{}" data-points="{}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>{} over time</title>"#,
        esc(id),
        points.len(),
        esc(id)
    );
    let _ = write!(
        s,
        r##"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="#888"/><text x="2" y="{ty}" font-size="10">{max:.0} {unit}</text>"##,
        b = H - PAD,
        r = W - PAD,
        ty = PAD - 4.0,
        max = top / 1.1,
        unit = esc(unit)
    );
    if let Some(r) = reference {
        let _ = write!(
            s,
            r##"<line class="reference" x1="{PAD}" y1="{y}" x2="{x2}" y2="{y}" stroke="#8cc8ee" stroke-dasharray="4 3"><title>Processing Time &lt;= Batch Interval</title></line><text x="{tx}" y="{ty}" font-size="10" fill="#5aa">stable</text>"##,
            y = y(r),
            x2 = W - PAD,
            tx = W - PAD + 2.0,
            ty = y(r) + 3.0
        );
    }
    if !points.is_empty() {
        let path: Vec<String> = points.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
        let _ = write!(s, r##"<polyline fill="none" stroke="#1f77b4" points="{}"/>"##, path.join(" "));
        for &(t, v) in points {
            let _ = write!(
                s,
                r##"<a href="batch/?id={t}"><circle class="point" cx="{:.1}" cy="{:.1}" r="2.5" fill="#1f77b4"><title>{} {}: {v:.2}</title></circle></a>"##,
                x(t),
                y(v),
                crate::format::page_date(t),
                esc(unit)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{PAD}" y="{ly}" font-size="10">{}</text><text x="{rx}" y="{ly}" font-size="10" text-anchor="end">{}</text>"#,
            crate::format::page_date(t0).split(' ').nth(1).unwrap_or(""),
            crate::format::page_date(t1).split(' ').nth(1).unwrap_or(""),
            ly = H - PAD + 14.0,
            rx = W - PAD
        );
    }
    s.push_str("</svg>");
    s
}

/// Counts of `values` in [`BINS`] equal bins from 0 to `max` (the last bin includes `max`).
pub fn bins(values: &[f64], max: f64) -> [u64; BINS] {
    let mut counts = [0u64; BINS];
    for &v in values {
        let i = if max <= 0.0 { 0 } else { ((v / max) * BINS as f64) as usize };
        counts[i.min(BINS - 1)] += 1;
    }
    counts
}

/// A histogram of `values` with [`BINS`] bins over `0..=y_max`, drawn sideways as Spark draws it
/// (values up the y axis, number of batches along x).
pub fn histogram(id: &str, values: &[f64], unit: &str, y_max: Option<f64>) -> String {
    let max = y_max.unwrap_or_else(|| values.iter().copied().fold(0.0, f64::max));
    let counts = bins(values, max);
    let most = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bin_h = (H - 2.0 * PAD) / BINS as f64;
    let mut s = format!(
        r#"<svg class="histogram" id="{}" data-bins="{BINS}" width="{HW}" height="{H}" viewBox="0 0 {HW} {H}" role="img"><title>{} histogram</title>"#,
        esc(id),
        esc(id)
    );
    for (i, &c) in counts.iter().enumerate() {
        let w = c as f64 / most * (HW - 2.0 * PAD);
        let lo = max / BINS as f64 * i as f64;
        let hi = max / BINS as f64 * (i + 1) as f64;
        let _ = write!(
            s,
            r##"<rect class="bin" data-count="{c}" x="{PAD}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="#1f77b4"><title>{lo:.0}–{hi:.0} {}: {c} batches</title></rect>"##,
            H - PAD - bin_h * (i + 1) as f64,
            bin_h - 1.0,
            esc(unit)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><text x="{r}" y="{ly}" font-size="10" text-anchor="end">#batches</text>"##,
        b = H - PAD,
        r = HW - PAD,
        ly = H - PAD + 14.0
    );
    s.push_str("</svg>");
    s
}

/// A horizontal bar chart of `(label, value)` rows, for dashboards.
pub fn bars(rows: &[(String, f64)]) -> String {
    let row_h = 22.0;
    let label_w = 180.0;
    let width = 720.0;
    let height = row_h * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut s = format!(
        r#"<svg class="bars" data-rows="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#,
        rows.len()
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let w = (v / max).max(0.0) * (width - label_w - 80.0);
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" font-size="13" text-anchor="end">{l}</text><rect class="bar" data-label="{l}" data-value="{v}" x="{label_w}" y="{y}" width="{w:.1}" height="{bh}" fill="#e8743b"/><text x="{vx:.1}" y="{ty}" font-size="13">{v}</text>"##,
            lx = label_w - 6.0,
            ty = y + 15.0,
            l = esc(label),
            bh = row_h - 4.0,
            vx = label_w + w + 6.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_bins_hold_every_value() {
        let counts = bins(&[0.0, 5.0, 10.0, 99.0, 100.0], 100.0);
        assert_eq!(counts.iter().sum::<u64>(), 5);
        assert_eq!(counts[0], 2);
        assert_eq!(counts[9], 2, "the largest value falls in the last bin");
        assert_eq!(bins(&[0.0, 0.0], 0.0)[0], 2, "all zero: one bin, no division by zero");
    }

    #[test]
    fn a_timeline_has_one_point_per_batch_and_the_reference_line() {
        let svg = timeline("processing", &[(1000, 5.0), (2000, 7.0), (3000, 1.0)], "ms", Some(1000.0), None);
        assert_eq!(svg.matches("class=\"point\"").count(), 3);
        assert!(svg.contains("data-points=\"3\"") && svg.contains("class=\"reference\""));
        assert_eq!(histogram("h", &[1.0, 2.0], "ms", None).matches("class=\"bin\"").count(), BINS);
    }
}
