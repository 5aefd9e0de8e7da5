//! The load generator: serves text lines (or JSON ad events) over TCP on 127.0.0.1 to one client,
//! at fixed rates following a schedule, and logs what it actually sent each second.
//!
//! A consumer that cannot keep up pushes back through TCP, so `sent < target` in the log shows an
//! overloaded engine. Lines are made up front (400,000 of them, seeded) and sent in a cycle, paced
//! in 5 ms ticks, so the generator itself stays cheap; it reports its own CPU time at the end.

use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context};
use ember::clock::{real_sleep, Stopwatch};
use ember::{GeneratedText, LineGenerator};

/// One step of a schedule: `rate` lines per second for `seconds`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub rate: u64,
    pub seconds: u64,
}

/// Parses `RATE:SECS,RATE:SECS,...`.
pub fn parse_schedule(s: &str) -> anyhow::Result<Vec<Step>> {
    s.split(',')
        .map(|part| {
            let (r, secs) = part.split_once(':').with_context(|| format!("step `{part}` is not RATE:SECS"))?;
            Ok(Step { rate: r.trim().parse()?, seconds: secs.trim().parse()? })
        })
        .collect()
}

const POOL: usize = 400_000;
const TICK_MS: u64 = 5;

/// The line pool: word lines, or JSON ad events when `json`.
pub fn pool(json: bool) -> Vec<Vec<u8>> {
    let text = GeneratedText { lines_per_second: 0, words_per_line: 8, vocabulary: 10_000, skew: 1.0, seed: 42 };
    let mut g = LineGenerator::new(&text, 0);
    (0..POOL)
        .map(|i| {
            let mut line = if json { ad_event(i as u64) } else { g.next_line() }.into_bytes();
            line.push(b'\n');
            line
        })
        .collect()
}

/// Ad ids per campaign and campaigns, as in the Yahoo streaming benchmark's setup.
pub const CAMPAIGNS: u64 = 100;
pub const ADS_PER_CAMPAIGN: u64 = 10;
const EVENT_TYPES: [&str; 3] = ["view", "click", "purchase"];

/// The `i`-th ad event: JSON with user, page, ad, ad type, event type, time and IP.
pub fn ad_event(i: u64) -> String {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        r#"{{"user_id":"u{:06}","page_id":"p{:05}","ad_id":"ad-{:04}","ad_type":"banner","event_type":"{}","event_time":"{}","ip_address":"10.{}.{}.{}"}}"#,
        h % 1_000_000,
        (h >> 20) % 100_000,
        (h >> 40) % (CAMPAIGNS * ADS_PER_CAMPAIGN),
        EVENT_TYPES[((h >> 8) % 3) as usize],
        1_700_000_000_000 + i,
        (h >> 5) & 0xff,
        (h >> 13) & 0xff,
        (h >> 21) & 0xff
    )
}

/// The campaign of an ad id (`ad-NNNN`): the static table both engines join against.
pub fn campaign_table() -> Vec<(String, String)> {
    (0..CAMPAIGNS * ADS_PER_CAMPAIGN)
        .map(|a| (format!("ad-{a:04}"), format!("campaign-{:03}", a / ADS_PER_CAMPAIGN)))
        .collect()
}

/// CPU seconds (user + system) this process used so far.
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// Serves `schedule` to the first client that connects to `port`; logs `second,target,sent`.
pub fn serve(port: u16, schedule: &[Step], json: bool, log: &mut dyn Write) -> anyhow::Result<()> {
    let lines = pool(json);
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
    eprintln!("loadgen: listening on 127.0.0.1:{port}");
    let (conn, _) = listener.accept()?;
    conn.set_nodelay(true)?;
    use ember::Clock;
    eprintln!("loadgen: start_ms={}", ember::SystemClock.now_millis());
    let mut out = BufWriter::with_capacity(1 << 16, conn);
    writeln!(log, "second,target,sent")?;
    let watch = Stopwatch::start();
    let (mut next, mut second, mut sent_this_second) = (0usize, 0u64, 0u64);
    let mut step_start_ms = 0u64;
    for step in schedule {
        let step_ms = step.seconds * 1000;
        let mut sent_in_step = 0u64;
        loop {
            let elapsed = watch.elapsed().as_millis() as u64;
            let in_step = elapsed.saturating_sub(step_start_ms);
            let due = step.rate * in_step.min(step_ms) / 1000;
            while sent_in_step < due {
                if let Err(e) = out.write_all(&lines[next]) {
                    eprintln!("loadgen: client gone ({e}); stopping");
                    return Ok(());
                }
                next = (next + 1) % lines.len();
                sent_in_step += 1;
                sent_this_second += 1;
            }
            out.flush()?;
            let now = watch.elapsed().as_millis() as u64;
            while now >= (second + 1) * 1000 {
                writeln!(log, "{},{},{}", second, step.rate, sent_this_second)?;
                second += 1;
                sent_this_second = 0;
            }
            if in_step >= step_ms {
                break;
            }
            real_sleep(Duration::from_millis(TICK_MS));
        }
        step_start_ms += step_ms;
    }
    log.flush()?;
    eprintln!("loadgen: done, own CPU {:.2} s over {:.1} s", own_cpu_seconds(), watch.elapsed().as_secs_f64());
    Ok(())
}

/// `ember-bench loadgen --port P --schedule S [--json] [--log FILE]`
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let port: u16 = get("--port").context("--port is required")?.parse()?;
    let schedule = parse_schedule(&get("--schedule").context("--schedule RATE:SECS,... is required")?)?;
    if schedule.is_empty() {
        bail!("empty schedule");
    }
    let json = args.iter().any(|a| a == "--json");
    let mut log: Box<dyn Write> = match get("--log") {
        Some(path) => Box::new(std::fs::File::create(&path).with_context(|| format!("creating {path}"))?),
        None => Box::new(std::io::sink()),
    };
    serve(port, &schedule, json, &mut *log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse() {
        assert_eq!(
            parse_schedule("100:5,2000:10").unwrap(),
            vec![Step { rate: 100, seconds: 5 }, Step { rate: 2000, seconds: 10 }]
        );
        assert!(parse_schedule("fast").is_err());
    }

    #[test]
    fn ad_events_are_json_with_a_known_ad() {
        let table: std::collections::HashMap<String, String> = campaign_table().into_iter().collect();
        for i in 0..100 {
            let v: serde_json::Value = serde_json::from_str(&ad_event(i)).unwrap();
            assert!(table.contains_key(v["ad_id"].as_str().unwrap()));
            assert!(["view", "click", "purchase"].contains(&v["event_type"].as_str().unwrap()));
        }
    }
}
