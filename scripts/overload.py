#!/usr/bin/env python3
"""Overload runs: a socket sender far above what the word count sustains, with backpressure on
and off. Writes a plot-ready CSV per run and an SVG chart of input rate, rate limit and
scheduling delay per batch, plus peak RSS, to crates/ember-bench/results/overload-<date>/.

    scripts/overload.py [SECONDS] [RATE] [WORKERS]     (defaults: 60 s, 8,000,000 lines/s, 1 worker)
"""
import csv, datetime, os, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "ember-bench")
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
RATE = int(sys.argv[2]) if len(sys.argv) > 2 else 8_000_000
WORKERS = sys.argv[3] if len(sys.argv) > 3 else "1"
OUT = os.path.join(ROOT, "crates", "ember-bench", "results", f"overload-{datetime.date.today().isoformat()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name, confs):
    port = free_port()
    gen_log, csv_path = (os.path.join(OUT, f"{name}.{x}") for x in ("gen.csv", "batches.csv"))
    gen = subprocess.Popen([BENCH, "loadgen", "--port", str(port), "--schedule", f"{RATE}:{SECONDS}", "--log", gen_log],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.3)
    cmd = [BENCH, "socket", "--workload", "wordcount", "--port", str(port), "--workers", WORKERS,
           "--seconds", str(SECONDS), "--csv", csv_path, "--until-eof"]
    for c in confs:
        cmd += ["--conf", c]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"),
                         timeout=SECONDS + 300).stdout
    gen_out = gen.communicate(timeout=60)[0]
    rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(csv_path))]
    sent = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(gen_log))]
    report = lambda text, key: int(text.split(key + "=")[1].split()[0])
    totals = {"offered": report(gen_out, "offered"), "sent": report(gen_out, "sent"),
              "processed": report(out, "processed_lines")}
    return rows, sent, report(out, "peak_rss_kib") / 1024, totals


def svg(name, rows, path):
    """Input records per second, rate limit (both left axis) and scheduling delay (right axis)."""
    w, h, pad = 900, 360, 50
    t0 = rows[0]["batch_ms"] if rows else 0
    xs = [(r["batch_ms"] - t0) / 1000 for r in rows]
    xmax = max(xs) if xs else 1
    ymax = max([r["num_records"] for r in rows] + [r["rate_limit"] for r in rows] + [1])
    dmax = max([r["sched_delay_ms"] for r in rows] + [1])
    X = lambda x: pad + (w - 2 * pad) * x / xmax
    Y = lambda y: h - pad - (h - 2 * pad) * y / ymax
    D = lambda d: h - pad - (h - 2 * pad) * d / dmax
    line = lambda pts, color: '<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (
        color, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{pad}" y="20">{name}: input records/batch (blue), rate limit (green), scheduling delay ms (red, right axis)</text>',
             f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>',
             f'<text x="{pad}" y="{pad-5}">{ymax:,.0f}</text>', f'<text x="{w-pad-60}" y="{pad-5}" fill="red">{dmax:,.0f} ms</text>',
             f'<text x="{w-pad-30}" y="{h-pad+15}">{xmax:.0f} s</text>',
             line([(X(x), Y(r["num_records"])) for x, r in zip(xs, rows)], "blue"),
             line([(X(x), Y(r["rate_limit"])) for x, r in zip(xs, rows)], "green"),
             line([(X(x), D(r["sched_delay_ms"])) for x, r in zip(xs, rows)], "red"), "</svg>"]
    open(path, "w").write("\n".join(parts))


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = [f"# Overload: {RATE:,} lines/s offered for {SECONDS} s, word count on local[{WORKERS}]", "",
               "| run | lines offered | lines sent | lines processed | sent lines/s (mean) | scheduling delay ms, last 20 s: max | "
               "max scheduling delay ms | peak RSS MiB |",
               "|---|---|---|---|---|---|---|---|"]
    for name, confs in [("backpressure-on", ["backpressure.enabled=true"]), ("backpressure-off", [])]:
        rows, sent, rss, totals = run(name, confs)
        svg(name, rows, os.path.join(OUT, f"{name}.svg"))
        t0 = rows[0]["batch_ms"] if rows else 0
        late = [r for r in rows if SECONDS - 20 <= (r["batch_ms"] - t0) / 1000 < SECONDS] or rows
        summary.append(f"| {name} | {totals['offered']:,} | {totals['sent']:,} | {totals['processed']:,} | "
                       f"{totals['sent'] / SECONDS:,.0f} | {max(r['sched_delay_ms'] for r in late):.0f} | "
                       f"{max(r['sched_delay_ms'] for r in rows):.0f} | {rss:.0f} |")
    summary += ["", "The engine reads until the sender closes the connection and stops gracefully, so lines processed",
                "equal lines sent when nothing is lost. Per-batch CSVs (`*.batches.csv`: batch_ms, num_records,",
                "sched/proc/total delay, rate_limit), the sender's log (`*.gen.csv`: second, target, sent) and charts",
                "(`*.svg`) are beside this file. Command: `scripts/overload.py " + " ".join(sys.argv[1:]) + "`.", ""]
    open(os.path.join(OUT, "README.md"), "w").write("\n".join(summary))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
