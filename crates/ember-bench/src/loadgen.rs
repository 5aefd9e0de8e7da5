//! The load generator: serves text lines (or JSON ad events) over TCP on 127.0.0.1 to one client,
//! at fixed rates following a schedule, and logs what it actually sent each second.
//!
//! A consumer that cannot keep up pushes back through TCP, so `sent < target` in the log shows an
//! overloaded engine. Lines are made up front (400,000 of them, seeded) and sent in a cycle, paced
//! in 5 ms ticks, so the generator itself stays cheap; it reports its own CPU time at the end.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
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
/// Lines go out in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

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

/// What a load generator run offered and sent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sent {
    /// Lines the schedule offered.
    pub offered: u64,
    /// Lines written whole to the connection.
    pub sent: u64,
}

/// Lines on their way out: a run of whole lines, written as far as the connection takes them.
struct Chunk {
    bytes: Vec<u8>,
    lines: u64,
    written: usize,
}

impl Chunk {
    fn is_out(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// Writes what the connection takes within its write timeout; returns the chunk's line count
    /// once, when its last byte is out.
    fn write(&mut self, conn: &mut TcpStream) -> std::io::Result<u64> {
        match conn.write(&self.bytes[self.written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => self.written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
        Ok(if self.is_out() { std::mem::take(&mut self.lines) } else { 0 })
    }
}

/// The per-second log, `second,target,sent`, and the run's total of lines sent.
struct SecondLog<'a> {
    out: &'a mut dyn Write,
    second: u64,
    sent: u64,
    total: u64,
}

impl SecondLog<'_> {
    fn count(&mut self, lines: u64) {
        self.sent += lines;
        self.total += lines;
    }

    /// Writes the rows of the seconds that ended by `now_ms`.
    fn advance(&mut self, now_ms: u64, target: u64) -> std::io::Result<()> {
        while now_ms >= (self.second + 1) * 1000 {
            writeln!(self.out, "{},{},{}", self.second, target, self.sent)?;
            (self.second, self.sent) = (self.second + 1, 0);
        }
        Ok(())
    }
}

/// Serves `schedule` to the first client that connects to `port`, then closes the connection;
/// logs `second,target,sent` for every second of the schedule.
///
/// The schedule is wall time and the rate a ceiling: lines that a blocked connection kept from
/// going out are not sent later (beyond 100 ms of them), so `sent < offered` measures how hard the
/// consumer pushed back. Only whole lines count and the connection ends on a line boundary, so a
/// consumer that reads to the end has exactly `sent` lines.
pub fn serve(port: u16, schedule: &[Step], json: bool, log: &mut dyn Write) -> anyhow::Result<Sent> {
    let lines = pool(json);
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
    eprintln!("loadgen: listening on 127.0.0.1:{port}");
    let (mut conn, _) = listener.accept()?;
    conn.set_nodelay(true)?;
    // A short write timeout lets a blocked sender see its step end.
    conn.set_write_timeout(Some(Duration::from_millis(TICK_MS)))?;
    use ember::Clock;
    eprintln!("loadgen: start_ms={}", ember::SystemClock.now_millis());
    writeln!(log, "second,target,sent")?;
    let mut per_second = SecondLog { out: log, second: 0, sent: 0, total: 0 };
    let watch = Stopwatch::start();
    let elapsed_ms = || watch.elapsed().as_millis() as u64;
    let mut total = Sent::default();
    let mut next = 0usize;
    let mut chunk = Chunk { bytes: Vec::with_capacity(CHUNK_BYTES + 1024), lines: 0, written: 0 };
    let mut step_start_ms = 0u64;
    let mut gone = false;
    for (i, step) in schedule.iter().enumerate() {
        // The last second's row waits for the end, which may finish a cut-off chunk.
        let last = i + 1 == schedule.len();
        let step_end_ms = step_start_ms + step.seconds * 1000;
        total.offered += step.rate * step.seconds;
        let mut taken_in_step = 0u64;
        loop {
            let now = elapsed_ms();
            per_second.advance(now.min(step_end_ms - u64::from(last)), step.rate)?;
            // The lines of the step's last tick go out in a short grace period after it.
            let all_taken = taken_in_step == step.rate * step.seconds;
            if gone || (now >= step_end_ms && (all_taken || now >= step_end_ms + 2 * TICK_MS)) {
                break;
            }
            if chunk.is_out() {
                let due = step.rate * (now.min(step_end_ms) - step_start_ms) / 1000;
                // A sender at a fixed rate: after a blocked write, at most 100 ms of lines are
                // made up for; the rest are never sent.
                taken_in_step = taken_in_step.max(due.saturating_sub(step.rate / 10));
                chunk.bytes.clear();
                chunk.written = 0;
                while taken_in_step < due && chunk.bytes.len() < CHUNK_BYTES {
                    chunk.bytes.extend_from_slice(&lines[next]);
                    next = (next + 1) % lines.len();
                    chunk.lines += 1;
                    taken_in_step += 1;
                }
                if chunk.is_out() {
                    real_sleep(Duration::from_millis(TICK_MS));
                    continue;
                }
            }
            match chunk.write(&mut conn) {
                Ok(n) => per_second.count(n),
                Err(e) => {
                    eprintln!("loadgen: client gone ({e}); stopping");
                    gone = true;
                }
            }
        }
        step_start_ms = step_end_ms;
    }
    // A chunk that the end of the schedule cut off is finished, so the stream ends on a whole line.
    let finishing = Stopwatch::start();
    while !gone && !chunk.is_out() && finishing.elapsed() < Duration::from_secs(60) {
        match chunk.write(&mut conn) {
            Ok(n) => per_second.count(n),
            Err(_) => gone = true,
        }
    }
    total.sent = per_second.total;
    per_second.advance(step_start_ms, schedule.last().map_or(0, |s| s.rate))?;
    per_second.out.flush()?;
    drop(conn);
    eprintln!(
        "loadgen: done, offered {} lines, sent {}, own CPU {:.2} s over {:.1} s",
        total.offered,
        total.sent,
        own_cpu_seconds(),
        watch.elapsed().as_secs_f64()
    );
    println!("LOADGEN offered={} sent={}", total.offered, total.sent);
    Ok(total)
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
    serve(port, &schedule, json, &mut *log).map(|_| ())
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

    /// Serves `schedule` on a free port to a client that reads everything, `pause` between reads.
    fn serve_to_reader(schedule: &[Step], pause: Duration) -> (Sent, u64, String) {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let schedule = schedule.to_vec();
        let server = std::thread::spawn(move || {
            let mut log = Vec::new();
            let sent = serve(port, &schedule, false, &mut log).unwrap();
            (sent, String::from_utf8(log).unwrap())
        });
        let mut conn = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => break c,
                Err(_) => real_sleep(Duration::from_millis(10)),
            }
        };
        conn.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let (mut lines, mut buf, mut last) = (0u64, vec![0u8; 64 * 1024], b'\n');
        loop {
            use std::io::Read;
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            last = buf[n - 1];
            if !pause.is_zero() {
                real_sleep(pause);
            }
        }
        assert_eq!(last, b'\n', "the stream ends on a whole line");
        let (sent, log) = server.join().unwrap();
        (sent, lines, log)
    }

    #[test]
    fn a_reader_that_keeps_up_gets_every_offered_line_and_the_log_adds_up() {
        let (sent, lines, log) =
            serve_to_reader(&[Step { rate: 2_000, seconds: 1 }, Step { rate: 5_000, seconds: 1 }], Duration::ZERO);
        assert_eq!(sent, Sent { offered: 7_000, sent: 7_000 });
        assert_eq!(lines, 7_000);
        let rows: Vec<Vec<u64>> =
            log.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
        assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![0, 1], "one row per second: {log}");
        assert_eq!(rows.iter().map(|r| r[1]).collect::<Vec<_>>(), vec![2_000, 5_000]);
        assert_eq!(rows.iter().map(|r| r[2]).sum::<u64>(), 7_000, "{log}");
    }

    #[test]
    fn a_slow_reader_slows_the_sender_and_gets_exactly_what_was_sent() {
        // At most 64 KiB every 20 ms, about 3 MiB/s: far below 5,000,000 lines/s.
        let (sent, lines, log) = serve_to_reader(&[Step { rate: 5_000_000, seconds: 2 }], Duration::from_millis(20));
        assert_eq!(sent.offered, 10_000_000);
        assert!(sent.sent < sent.offered / 10, "the sender was not slowed: {sent:?}");
        assert_eq!(lines, sent.sent, "the reader got exactly the lines counted as sent");
        let logged: u64 = log.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(logged, sent.sent, "{log}");
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
