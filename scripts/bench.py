#!/usr/bin/env python3
"""Ember and Apache Spark Streaming side by side, on the same load generator and machine.

Called by scripts/bench.sh, which builds ember-bench and the Spark peer first. For every workload
(wordcount, windowed, yahoo) and both systems it finds the maximum sustainable input rate (a
ramp of fixed-rate steps), then runs at 50 % of that rate to measure CPU seconds per million
records, total-delay p50/p99, peak RSS and the time from process start to the first completed
batch. For Ember alone it finds the smallest stable batch interval at a fixed rate. It writes
crates/ember-bench/results/<date>.md.
"""
import csv, datetime, os, shutil, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "ember-bench")
PEERS = os.environ.get("PEERS_DIR", os.path.expanduser("~/.cache/ember-peers"))
WORK = os.path.join(PEERS, "runs")
MODE = sys.argv[1] if len(sys.argv) > 1 else "quick"

# Java 17 needs the module openings Spark's own launcher adds.
OPENS = ["java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
         "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref", "sun.nio.ch", "sun.nio.cs",
         "sun.security.action", "sun.util.calendar"]
JAVA_FLAGS = ["-XX:+IgnoreUnrecognizedVMOptions", "-XX:+ExitOnOutOfMemoryError", "-Xmx2g",
              "-Dio.netty.tryReflectionSetAccessible=true"] + [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in OPENS]

QUICK = MODE in ("quick", "noisy", "sql")
STEP_S = 8 if QUICK else 20
IGNORE_S = 3 if QUICK else 5
LOAD_S = 20 if MODE in ("noisy", "sql") else 12 if QUICK else 60
RATES = {
    ("ember", "wordcount"): [1_000_000, 2_000_000, 3_000_000, 4_000_000],
    ("spark", "wordcount"): [250_000, 500_000, 750_000, 1_000_000],
    ("ember", "windowed"): [1_000_000, 2_000_000, 3_000_000, 4_000_000],
    ("spark", "windowed"): [250_000, 500_000, 750_000, 1_000_000],
    ("ember", "yahoo"): [1_000_000, 2_000_000, 3_000_000, 4_000_000],
    ("spark", "yahoo"): [100_000, 250_000, 500_000],
}
GEN_CPU = []  # (generator CPU seconds, run seconds) per run
OUTPUT_INTERVAL_MS = {"wordcount": 1000, "sql": 1000, "windowed": 2000, "yahoo": 10_000}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jars():
    py = os.path.join(PEERS, "venv", "bin", "python")
    return subprocess.check_output([py, "-c", "import os,pyspark;print(os.path.join(os.path.dirname(pyspark.__file__),'jars'))"], text=True).strip()


def engine_cmd(system, workload, port, seconds, csv_path, batch_ms=1000):
    if system == "floor":
        # The word count's floor: one thread reading, splitting and counting, no engine.
        return [BENCH, "socket-hand", "--port", str(port), "--batch-ms", str(batch_ms), "--seconds", str(seconds),
                "--csv", csv_path]
    if system == "ember":
        return [BENCH, "socket", "--workload", workload, "--port", str(port), "--workers", "2",
                "--batch-ms", str(batch_ms), "--seconds", str(seconds), "--csv", csv_path]
    cp = f"{jars()}/*:{os.path.join(PEERS, 'classes')}"
    ckpt = os.path.join(WORK, f"ckpt-{workload}-{port}")
    return ["java"] + JAVA_FLAGS + ["-cp", cp, "SparkPeer", workload, str(port), "local[3]", str(batch_ms),
                                    str(seconds), csv_path, ckpt]


def run(system, workload, schedule, batch_ms=1000):
    """One run: the generator with `schedule` [(rate, secs)], the engine for its duration."""
    os.makedirs(WORK, exist_ok=True)
    port = free_port()
    tag = f"{system}-{workload}-{port}"
    gen_log, csv_path, time_path = (os.path.join(WORK, f"{tag}.{x}") for x in ("gen.csv", "batches.csv", "time"))
    seconds = sum(s for _, s in schedule)
    sched = ",".join(f"{r}:{s}" for r, s in schedule)
    gen = subprocess.Popen([BENCH, "loadgen", "--port", str(port), "--schedule", sched, "--log", gen_log]
                           + (["--json"] if workload == "yahoo" else []), stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", RUST_LOG="error")
    eng = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", time_path]
                         + engine_cmd(system, workload, port, seconds + 2, csv_path, batch_ms),
                         capture_output=True, text=True, env=env, timeout=seconds + 120)
    try:
        _, gen_err = gen.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        gen.kill()
        _, gen_err = gen.communicate()
    start_ms = next((int(l.split("start_ms=")[1]) for l in gen_err.splitlines() if "start_ms=" in l), None)
    wall, user, sys_, rss = open(time_path).read().split()[-4:]
    first = next((float(l.split("=")[1]) for l in eng.stdout.splitlines() if "start_to_first_batch_done_ms" in l), -1)
    gen_cpu = next((float(l.split("own CPU ")[1].split()[0]) for l in gen_err.splitlines() if "own CPU" in l), -1.0)
    GEN_CPU.append((gen_cpu, seconds))
    rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(csv_path))] if os.path.exists(csv_path) else []
    sent = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(gen_log))] if os.path.exists(gen_log) else []
    return {"rows": rows, "sent": sent, "start_ms": start_ms, "cpu": float(user) + float(sys_), "rss_kb": int(rss),
            "first_batch_ms": first, "schedule": schedule, "exit": eng.returncode}


def step_seconds(workload):
    """A step must hold at least two outputs after the ignored start."""
    return max(STEP_S, IGNORE_S + 2 * OUTPUT_INTERVAL_MS[workload] // 1000 + 1)


def output_rows(rows, interval_ms, batch_ms=1000):
    """The batches that ran the output: Spark reports only those (its rows pass as they are);
    Ember reports every batch, and its windows emit at zero + k * slide, zero being the time
    before its first batch."""
    if len(rows) < 2 or rows[1]["batch_ms"] - rows[0]["batch_ms"] >= interval_ms:
        return rows
    zero = rows[0]["batch_ms"] - batch_ms
    return [r for r in rows if (r["batch_ms"] - zero) % interval_ms == 0]


def step_stable(res, i, interval_ms):
    """Whether step i of a ramp run held: input kept up and the delays stayed bounded."""
    rate, secs = res["schedule"][i]
    t0 = sum(s for _, s in res["schedule"][:i])
    sent = [s["sent"] for s in res["sent"] if t0 + IGNORE_S <= s["second"] < t0 + secs]
    if not sent or res["start_ms"] is None:
        return False
    lo, hi = res["start_ms"] + (t0 + IGNORE_S) * 1000, res["start_ms"] + (t0 + secs) * 1000
    rows = [r for r in output_rows(res["rows"], interval_ms) if lo <= r["batch_ms"] <= hi]
    if not rows:
        return False
    received = sum(sent) / len(sent) >= 0.97 * rate
    mean_proc = sum(r["proc_delay_ms"] for r in rows) / len(rows)
    sched = [r["sched_delay_ms"] for r in rows]
    return received and mean_proc < interval_ms and sched[-1] < interval_ms and max(sched) < 2 * interval_ms


def max_sustainable(system, workload):
    rates = RATES[(system, workload)]
    res = run(system, workload, [(r, step_seconds(workload)) for r in rates])
    best = 0
    for i, r in enumerate(rates):
        if not step_stable(res, i, OUTPUT_INTERVAL_MS[workload]):
            break
        best = r
    return best


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))] if xs else -1


def at_load(system, workload, rate, batch_ms=1000):
    res = run(system, workload, [(rate, max(LOAD_S, step_seconds(workload)))], batch_ms)
    outputs = output_rows(res["rows"], OUTPUT_INTERVAL_MS[workload], batch_ms)
    steady = [r for r in outputs if res["start_ms"] and r["batch_ms"] >= res["start_ms"] + 5000]
    # Input records from the generator's log: Spark reports only batches that ran jobs, and each
    # reported count covers one batch interval, so its own counts undercount windowed runs.
    records = sum(x["sent"] for x in res["sent"])
    delays = [r["total_delay_ms"] for r in steady]
    return {"rate": rate, "cpu_per_m": res["cpu"] / max(records / 1e6, 1e-9), "p50": percentile(delays, 0.5),
            "p99": percentile(delays, 0.99), "rss_mb": res["rss_kb"] / 1024, "first_ms": res["first_batch_ms"],
            "records": records, "cpu": res["cpu"]}


def smallest_interval(rate=100_000):
    best = None
    for ms in [1000, 100, 10, 1]:
        res = run("ember", "wordcount", [(rate, 6 if QUICK else STEP_S)], batch_ms=ms)
        if not step_stable(res, 0, ms):
            break
        best = ms
    return best


def profile(rate):
    """Where Ember's time goes in the socket word count at `rate`: perf's top symbols."""
    if not shutil.which("perf"):
        return "(no profile: install Debian's linux-perf to get one)"
    port = free_port()
    data = os.path.join(WORK, "perf.data")
    gen = subprocess.Popen([BENCH, "loadgen", "--port", str(port), "--schedule", f"{rate}:{STEP_S}"],
                           stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    rec = subprocess.run(["perf", "record", "-F", "499", "-g", "-o", data, "--", BENCH, "socket", "--workload",
                          "wordcount", "--port", str(port), "--seconds", str(STEP_S), "--csv",
                          os.path.join(WORK, "perf.csv")], capture_output=True, text=True)
    try:
        gen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        gen.kill()
    if rec.returncode != 0:
        return f"(no profile: perf record failed: {rec.stderr.strip()[-300:]})"
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio"],
                            capture_output=True, text=True).stdout
    top = [" ".join(l.split()[:1] + l.split()[2:])[:110] for l in report.splitlines() if l.strip()[:1].isdigit()][:12]
    return "\n".join(top)


def alternating(configs, rate, repeats):
    """Runs every (system, workload, batch ms) of `configs` at `rate`, `repeats` times in turn,
    after one idle run per system and batch interval. Returns the runs of each configuration, each
    with `cpu_per_m_marginal` (its CPU less the idle run's, per million records sent), and the
    idle runs' CPU by (system, batch ms)."""
    idle = {}
    for system, workload, ms in configs:
        if (system, ms) not in idle:
            idle[(system, ms)] = run(system, workload, [(0, LOAD_S)], ms)["cpu"]
    per = {c: [] for c in configs}
    for i in range(repeats):
        for c in configs:
            system, workload, ms = c
            res = at_load(system, workload, rate, ms)
            res["cpu_per_m_marginal"] = max(res["cpu"] - idle[(system, ms)], 0) / max(res["records"] / 1e6, 1e-9)
            per[c].append(res)
            print(f"[bench] {system} {workload} {ms} ms run {i + 1}/{repeats}: {res['cpu_per_m_marginal']:.2f} CPU s per M records "
                  f"(idle run: {idle[(system, ms)]:.1f} CPU s), delay p50 {res['p50']} ms", flush=True)
    return per, idle


def noisy(workload="wordcount"):
    """A comparison that survives a busy machine: both systems at one fixed offered rate, in
    alternating runs repeated REPEATS times, each run's CPU less that of an idle run of the same
    length (start-up and idling, measured once per system), per million records sent. Reports the
    median and the spread instead of a maximum rate, which a busy machine drives to 0."""
    rate = int(os.environ.get("BENCH_RATE", "100000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    systems = ["ember", "spark"] + (["floor"] if workload == "wordcount" else [])
    runs, idle_runs = alternating([(system, workload, 1000) for system in systems], rate, repeats)
    per = {system: runs[(system, workload, 1000)] for system in systems}
    idle = {system: idle_runs[(system, 1000)] for system in systems}
    load = os.getloadavg()
    out = [f"# Ember vs Apache Spark Streaming at a fixed rate — {datetime.date.today().isoformat()} (noisy)", "",
           f"`{workload}` at {rate:,} lines/s offered, {LOAD_S} s per run, {repeats} alternating runs per system;",
           f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores.",
           "CPU per million records = (the run's CPU seconds - an idle run's of the same length) / records sent:",
           "start-up and idling do not count, so short runs on a busy machine still compare. Reproduce with",
           "`scripts/bench.sh noisy` (`BENCH_RATE`, `BENCH_REPEATS`).", "",
           "| system | CPU s per M records, median (min - max) | idle run CPU s | total delay p50 ms, median | peak RSS MiB, median |",
           "|---|---|---|---|---|"]
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for system in systems:
        c = [r["cpu_per_m_marginal"] for r in per[system]]
        out.append(f"| {system} | {med(c):.2f} ({min(c):.2f} - {max(c):.2f}) | {idle[system]:.1f} | "
                   f"{med([r['p50'] for r in per[system]])} | {med([r['rss_mb'] for r in per[system]]):.0f} |")
    e = med([r["cpu_per_m_marginal"] for r in per["ember"]])
    sp = med([r["cpu_per_m_marginal"] for r in per["spark"]])
    out += ["", f"Spark / Ember CPU per record (medians): **{ratio(sp, e)}**.", ""]
    if "floor" in per:
        fl = med([r["cpu_per_m_marginal"] for r in per["floor"]])
        out += [f"`floor` is `ember-bench socket-hand`: one thread reading the same socket, splitting and counting",
                f"into an Fx hash map, no engine — what any engine must spend at least. Ember / floor: **{ratio(e, fl)}**.", ""]
    name = f"{datetime.date.today().isoformat()}-noisy" + ("" if rate == 100000 else f"-{rate}") + ".md"
    path = os.path.join(ROOT, "crates", "ember-bench", "results", name)
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print(f"[bench] wrote {path}")


def sql():
    """The SQL word count (ember-sql) next to the typed one and next to Spark running the same
    SQL per batch in foreachRDD: one fixed offered rate, alternating runs (as `noisy`), at 1 s and
    100 ms batches; then `ember-bench sql`, in memory: lines/s, CPU per line and the fixed cost
    of an empty batch."""
    rate = int(os.environ.get("BENCH_RATE", "100000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    configs = [("ember", "wordcount", 1000), ("ember", "sql", 1000), ("spark", "sql", 1000), ("spark", "wordcount", 1000),
               ("ember", "sql", 100), ("spark", "sql", 100)]
    per, idle = alternating(configs, rate, repeats)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    load = os.getloadavg()
    out = [f"# SQL word count: Ember (ember-sql) and Apache Spark — {datetime.date.today().isoformat()}", "",
           f"Socket input at {rate:,} lines/s offered (8 words a line), {LOAD_S} s per run, {repeats} alternating runs per",
           f"configuration; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores. Ember: 2 workers;",
           "Spark: local[3], `spark.sql.shuffle.partitions=3`, the guide's foreachRDD + toDF + createOrReplaceTempView + spark.sql.",
           "CPU per million lines = (the run's CPU - an idle run's) / lines sent. Reproduce: `scripts/bench.sh sql`.", "",
           "| system | job | batch | CPU s per M lines, median (min - max) | idle run CPU s | total delay p50 ms | peak RSS MiB |",
           "|---|---|---|---|---|---|---|"]
    for c in configs:
        system, workload, ms = c
        xs = [r["cpu_per_m_marginal"] for r in per[c]]
        # A run that falls behind can use no more CPU than an idle run: no cost per line to show.
        cost = f"{med(xs):.2f} ({min(xs):.2f} - {max(xs):.2f})" if med(xs) > 0 else "n/a (no more CPU than idle: fell behind)"
        out.append(f"| {system} | {workload} | {ms} ms | {cost} | {idle[(system, ms)]:.1f} | "
                   f"{med([r['p50'] for r in per[c]])} | {med([r['rss_mb'] for r in per[c]]):.0f} |")
    cpu = lambda c: med([r["cpu_per_m_marginal"] for r in per[c]])
    out += ["", f"Ember SQL / Ember typed CPU per line: **{ratio(cpu(('ember', 'sql', 1000)), cpu(('ember', 'wordcount', 1000)))}**; "
            f"Spark SQL / Ember SQL: **{ratio(cpu(('spark', 'sql', 1000)), cpu(('ember', 'sql', 1000)))}** (1 s batches), "
            f"**{ratio(cpu(('spark', 'sql', 100)), cpu(('ember', 'sql', 100)))}** (100 ms).", "",
            "In memory (`ember-bench sql`: generated text, batches back to back on the manual clock):", ""]
    mem = subprocess.run([BENCH, "sql", "--lines-per-batch", "200000", "--batches", "10"], capture_output=True, text=True)
    out += mem.stdout.strip().splitlines() + [""]
    path = os.path.join(ROOT, "crates", "ember-bench", "results", f"{datetime.date.today().isoformat()}-sql.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print(f"[bench] wrote {path}")


def ratio(a, b):
    return f"{a / b:.1f}x" if a > 0 and b > 0 else "n/a"


def main():
    date = datetime.date.today().isoformat()
    results = {}
    for workload in ["wordcount", "windowed", "yahoo"]:
        for system in ["ember", "spark"]:
            print(f"[bench] {system} {workload}: ramp", flush=True)
            mx = max_sustainable(system, workload)
            print(f"[bench] {system} {workload}: max sustainable {mx} lines/s; load run at 50 %", flush=True)
            load = at_load(system, workload, max(mx // 2, RATES[(system, workload)][0] // 2))
            results[(system, workload)] = {"max": mx, **load}
    print("[bench] ember: smallest stable batch interval at 100k lines/s", flush=True)
    interval = smallest_interval()
    print("[bench] ember: profile of the socket word count", flush=True)
    prof = profile(max(results[("ember", "wordcount")]["max"], 1_000_000))
    hand = subprocess.run([BENCH, "wordcount", "--lines-per-batch", "500000", "--batches", "4"], capture_output=True, text=True).stdout

    out = [f"# Ember vs Apache Spark Streaming — {date} ({MODE})", "",
           "Same machine, same run, same load generator (`ember-bench loadgen`, 8 words per line from a 10,000-word",
           "Zipf vocabulary; JSON ad events for `yahoo`). Ember: `local[2]`; Spark 4.3 (PyPI pyspark, Java 17): `local[3]`",
           "(its socket receiver holds one slot), `-Xmx2g`. Reproduce with `scripts/bench.sh " + MODE + "`.", "",
           f"Ramps of {STEP_S} s steps; a step is sustainable when the generator sent >= 97 % of the rate, the mean",
           "processing time stayed below the output interval, and the scheduling delay ended below one interval and",
           f"never exceeded two. Load runs: {LOAD_S} s at 50 % of each system's own maximum. Delays are those of the",
           "batches that ran the output (every 1 s, 2 s and 10 s): Spark reports only those.", "",
           "| workload | system | max sustainable lines/s | CPU s per M records | total delay p50 / p99 ms | peak RSS MiB | start to first batch ms |",
           "|---|---|---|---|---|---|---|"]
    for workload in ["wordcount", "windowed", "yahoo"]:
        for system in ["ember", "spark"]:
            r = results[(system, workload)]
            out.append(f"| {workload} | {system} | {r['max']:,} | {r['cpu_per_m']:.2f} | {r['p50']} / {r['p99']} | {r['rss_mb']:.0f} | {r['first_ms']:.0f} |")
    out += ["", "| workload | Ember / Spark max rate | Spark / Ember CPU per record | Spark / Ember peak RSS |", "|---|---|---|---|"]
    for workload in ["wordcount", "windowed", "yahoo"]:
        e, s = results[("ember", workload)], results[("spark", workload)]
        out.append(f"| {workload} | {ratio(e['max'], s['max'])} | {ratio(s['cpu_per_m'], e['cpu_per_m'])} | {ratio(s['rss_mb'], e['rss_mb'])} |")
    out += ["", f"Ember's smallest stable batch interval at 100k lines/s (tried 1000, 100, 10, 1 ms): **{interval} ms**.", "",
            "The physical reference (`ember-bench wordcount`, in memory, generation included):", "", "```", hand.strip(), "```", "",
            "Where Ember's time goes, socket word count at its maximum rate (`perf record -F 499 -g`, top symbols):", "",
            "```", prof, "```", "",
            "The load generator's own CPU: at most "
            + f"{max((c / s for c, s in GEN_CPU if c >= 0), default=0) * 100:.0f} % of one core over a run.", ""]
    path = os.path.join(ROOT, "crates", "ember-bench", "results", f"{date}.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))
    print(f"[bench] wrote {path}")
    # The README shows the latest tables.
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        tables = [l for l in out if l.startswith("|")]
        body = "\n".join([f"Latest: `crates/ember-bench/results/{date}.md` (`scripts/bench.sh {MODE}`).", ""] + tables[:8] + [""] + tables[8:])
        text = text.split(start)[0] + start + "\n" + body + "\n" + end + text.split(end)[1]
        open(readme, "w").write(text)


if __name__ == "__main__":
    noisy() if MODE == "noisy" else sql() if MODE == "sql" else main()
