#!/usr/bin/env python3
"""What the web UI costs the word count: CPU seconds per million lines with and without it.

`python3 scripts/ui_overhead.py [RATE] [SECONDS] [PAIRS]` (defaults 200000 20 3), after
`cargo build --release -p ember-bench`. Each pair runs `ember-bench socket --workload wordcount`
on the load generator's lines at RATE lines/s for SECONDS, once without the UI and once with it
(`--ui`) while a viewer keeps the Streaming page's event stream open and fetches the page, its
fragment, the REST statistics and /metrics every second. CPU is the engine process's user + system
time (/usr/bin/time). The runs alternate, so both see the same machine.
"""
import os, socket, subprocess, sys, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "ember-bench")
RATE, SECONDS, PAIRS = (int(a) for a in (sys.argv[1:] + ["200000", "20", "3"][len(sys.argv) - 1:])[:3])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def viewer(base, stop):
    """A browser's worth of load: the event stream open, the pages and the metrics every second."""
    events = None
    try:
        events = urllib.request.urlopen(base + "/events", timeout=5)
    except Exception:
        pass
    while not stop.is_set():
        for path in ["/streaming/", "/streaming/fragment", "/metrics"]:
            try:
                urllib.request.urlopen(base + path, timeout=5).read()
            except Exception:
                pass
        try:
            app = __import__("json").loads(urllib.request.urlopen(base + "/api/v1/applications", timeout=5).read())[0]["id"]
            urllib.request.urlopen(f"{base}/api/v1/applications/{app}/streaming/statistics", timeout=5).read()
        except Exception:
            pass
        stop.wait(1.0)
    if events:
        events.close()


def run(ui):
    port, ui_port = free_port(), free_port()
    gen = subprocess.Popen([BENCH, "loadgen", "--port", str(port), "--schedule", f"{RATE}:{SECONDS}"],
                           stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    tpath = f"/tmp/ui-overhead-{port}.time"
    cmd = ["/usr/bin/time", "-f", "%U %S", "-o", tpath, BENCH, "socket", "--workload", "wordcount", "--port", str(port),
           "--seconds", str(SECONDS + 5), "--csv", f"/tmp/ui-overhead-{port}.csv", "--until-eof",
           "--conf", f"ui.port={ui_port}"] + (["--ui"] if ui else [])
    eng = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env=dict(os.environ, RUST_LOG="error"))
    stop = threading.Event()
    t = None
    if ui:
        time.sleep(1.0)
        t = threading.Thread(target=viewer, args=(f"http://127.0.0.1:{ui_port}", stop))
        t.start()
    out, _ = eng.communicate(timeout=SECONDS + 300)
    stop.set()
    if t:
        t.join()
    gen.wait(timeout=30)
    user, sys_ = (float(x) for x in open(tpath).read().split()[-2:])
    lines = next(int(l.split("=")[1]) for l in out.splitlines() if "processed_lines" in l)
    return (user + sys_) / (lines / 1e6), lines


rows = []
for i in range(PAIRS):
    off, off_lines = run(False)
    on, on_lines = run(True)
    rows.append((off, on))
    print(f"pair {i + 1}: without UI {off:.3f} CPU s per M lines ({off_lines} lines), "
          f"with UI and a viewer {on:.3f} ({on_lines} lines), {100 * (on - off) / off:+.1f} %", flush=True)
mean = lambda xs: sum(xs) / len(xs)
off_m, on_m = mean([r[0] for r in rows]), mean([r[1] for r in rows])
print(f"mean: without UI {off_m:.3f}, with UI {on_m:.3f} CPU s per M lines ({100 * (on_m - off_m) / off_m:+.1f} %); "
      f"spread without {min(r[0] for r in rows):.3f}-{max(r[0] for r in rows):.3f}, "
      f"with {min(r[1] for r in rows):.3f}-{max(r[1] for r in rows):.3f}")
