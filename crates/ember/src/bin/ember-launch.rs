//! `ember-launch`: runs a program as the P processes of one Ember job on this machine, and
//! supervises them as Spark's `--supervise` does its driver. When any process fails (exits with
//! an error or is killed), the others stop on their own within `cluster.failure_timeout`; the
//! launcher waits for every one of them to be gone (a new run must never meet a process of the
//! old one), then starts all again, and they resume from the job's checkpoint. Restarts are
//! limited by a budget, with a delay that doubles after each one.
//!
//! ```text
//! ember-launch [options] -- <program> [arguments...]
//!   --processes P       processes (default 2)
//!   --workers W         worker threads per process (default 1)
//!   --hosts H1,H2,..    the processes' host:port (default 127.0.0.1 from --port on)
//!   --port N            the first port of the default hosts (default 7100)
//!   --max-restarts R    restarts before giving up (default 10)
//!   --backoff D         the delay before the first restart, doubled each time up to
//!                       --max-backoff (defaults 1s and 30s; `0` restarts at once)
//!   --grace D           how long the others get to stop after a failure before they are
//!                       killed (default 3s)
//! ```
//!
//! Each process gets `EMBER_CLUSTER_HOSTS`, `EMBER_CLUSTER_PROCESS`, `EMBER_CLUSTER_WORKERS` and
//! `EMBER_LAUNCH_ATTEMPT` (0 for the first run). The launcher logs one line per event to stderr,
//! each starting with `ember-launch:`, e.g. `ember-launch: attempt 0: process 1 started (pid 4242)`.
//! It exits with 0 when every process of a run exited with 0, and with the failing process's
//! code (or 1) when the budget is spent.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use ember::clock::{real_sleep, Stopwatch};

struct Options {
    processes: usize,
    workers: usize,
    hosts: Vec<String>,
    max_restarts: u32,
    backoff: Duration,
    max_backoff: Duration,
    grace: Duration,
    program: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: ember-launch [--processes P] [--workers W] [--hosts H1,H2,..|--port N] [--max-restarts R] \
         [--backoff D] [--max-backoff D] [--grace D] -- <program> [arguments...]"
    );
    std::process::exit(2)
}

fn duration(flag: &str, v: &str) -> Duration {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else {
        (v, 1000)
    };
    match num.parse::<u64>() {
        Ok(n) => Duration::from_millis(n * scale),
        Err(_) => {
            eprintln!("ember-launch: {flag} takes a duration such as 500ms or 2s, not `{v}`");
            usage()
        }
    }
}

fn parse(args: Vec<String>) -> Options {
    let mut o = Options {
        processes: 2,
        workers: 1,
        hosts: Vec::new(),
        max_restarts: 10,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        grace: Duration::from_secs(3),
        program: Vec::new(),
    };
    let mut port = 7100u16;
    let mut processes_given = false;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--" {
            o.program = it.by_ref().collect();
            break;
        }
        let value = it.next().unwrap_or_else(|| usage());
        let number = |v: &str| -> u64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("ember-launch: {flag} takes a number, not `{v}`");
                usage()
            })
        };
        match flag.as_str() {
            "--processes" => {
                o.processes = number(&value) as usize;
                processes_given = true;
            }
            "--workers" => o.workers = number(&value) as usize,
            "--hosts" => o.hosts = value.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect(),
            "--port" => port = number(&value) as u16,
            "--max-restarts" => o.max_restarts = number(&value) as u32,
            "--backoff" => o.backoff = duration(&flag, &value),
            "--max-backoff" => o.max_backoff = duration(&flag, &value),
            "--grace" => o.grace = duration(&flag, &value),
            _ => {
                eprintln!("ember-launch: unknown option {flag}");
                usage()
            }
        }
    }
    if o.program.is_empty() || o.processes == 0 || o.workers == 0 {
        usage()
    }
    if o.hosts.is_empty() {
        o.hosts = (0..o.processes).map(|i| format!("127.0.0.1:{}", port as usize + i)).collect();
    } else if processes_given && o.hosts.len() != o.processes {
        eprintln!("ember-launch: --hosts lists {} hosts for {} processes", o.hosts.len(), o.processes);
        usage()
    } else {
        o.processes = o.hosts.len();
    }
    o
}

/// How a process ended, in words.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// Starts every process of one run.
fn start(o: &Options, attempt: u32) -> Result<Vec<Child>, String> {
    let hosts = o.hosts.join(",");
    (0..o.processes)
        .map(|i| {
            let child = Command::new(&o.program[0])
                .args(&o.program[1..])
                .env("EMBER_CLUSTER_HOSTS", &hosts)
                .env("EMBER_CLUSTER_PROCESS", i.to_string())
                .env("EMBER_CLUSTER_WORKERS", o.workers.to_string())
                .env("EMBER_LAUNCH_ATTEMPT", attempt.to_string())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", o.program[0]))?;
            eprintln!("ember-launch: attempt {attempt}: process {i} started (pid {})", child.id());
            Ok(child)
        })
        .collect()
}

/// Watches one run: `Ok` when every process exited with 0, else the first failure (process,
/// status) once every process of the run is gone.
fn watch(o: &Options, mut children: Vec<Child>) -> Result<(), (usize, ExitStatus)> {
    let mut status: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut failure: Option<(usize, ExitStatus)> = None;
    let mut since_failure: Option<Stopwatch> = None;
    let mut killed = false;
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if status[i].is_none() {
                if let Ok(Some(s)) = c.try_wait() {
                    status[i] = Some(s);
                    if !s.success() && failure.is_none() {
                        eprintln!("ember-launch: process {i} {}; the others stop too", describe(s));
                        failure = Some((i, s));
                        since_failure = Some(Stopwatch::start());
                    }
                }
            }
        }
        if status.iter().all(Option::is_some) {
            return failure.map_or(Ok(()), Err);
        }
        if let Some(w) = &since_failure {
            if !killed && w.elapsed() >= o.grace {
                eprintln!(
                    "ember-launch: killing the processes still running {:.1} s after the failure",
                    o.grace.as_secs_f64()
                );
                for (i, c) in children.iter_mut().enumerate() {
                    if status[i].is_none() {
                        let _ = c.kill();
                    }
                }
                killed = true;
            }
        }
        real_sleep(Duration::from_millis(20));
    }
}

fn main() {
    let o = parse(std::env::args().skip(1).collect());
    let mut backoff = o.backoff;
    let mut attempt = 0u32;
    loop {
        let children = match start(&o, attempt) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ember-launch: {e}");
                std::process::exit(1);
            }
        };
        let (process, status) = match watch(&o, children) {
            Ok(()) => {
                eprintln!("ember-launch: every process finished");
                return;
            }
            Err(f) => f,
        };
        if attempt >= o.max_restarts {
            eprintln!(
                "ember-launch: giving up after {attempt} restarts (--max-restarts): process {process} {}",
                describe(status)
            );
            std::process::exit(status.code().filter(|&c| c != 0).unwrap_or(1));
        }
        attempt += 1;
        eprintln!(
            "ember-launch: every process stopped; restart {attempt} of {} in {:.1} s, from the checkpoint",
            o.max_restarts,
            backoff.as_secs_f64()
        );
        real_sleep(backoff);
        backoff = (backoff * 2).min(o.max_backoff);
    }
}
