//! `socket_text_stream`: lines from a TCP server (spec §2.2).
//!
//! One receiver per stream, on its own thread beside worker `id % workers`. It connects as a
//! client, splits on `\n` (a trailing `\r` is dropped), and decodes UTF-8, replacing invalid
//! sequences with U+FFFD as Spark's decoder does (such lines are counted). Lines longer than
//! `receiver.max_line_bytes` are skipped, counted and logged, and never buffered beyond that
//! bound. When the server is not up, closes the connection or fails, the receiver reports the
//! error and reconnects after `receiver.restart_delay`, for as long as the context runs. It holds
//! at most `receiver.max_buffered_records` lines that no batch has taken yet; when that buffer is
//! full (the job is behind), it stops reading, so TCP pushes back on the sender.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock::lock;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::runtime::Runtime;
use crate::exec::source::{source, SourceDriver, SourceEnv};
use crate::listener::{Event, ReceiverInfo};
use crate::time::Time;

struct Shared {
    lines: Mutex<Vec<String>>,
    /// Signalled when the source took the buffered lines.
    drained: Condvar,
    stopped: AtomicBool,
    connection: Mutex<Option<TcpStream>>,
}

impl Shared {
    fn take(&self, out: &mut Vec<String>) {
        out.append(&mut lock(&self.lines));
        self.drained.notify_all();
    }
}

struct SocketDriver {
    shared: Arc<Shared>,
}

impl SourceDriver<String> for SocketDriver {
    fn poll(&mut self, _open: Time, out: &mut Vec<String>) -> bool {
        self.shared.take(out);
        false
    }

    fn close(&mut self, _t: Time, out: &mut Vec<String>) {
        self.shared.take(out);
    }

    fn finish(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.drained.notify_all();
        if let Some(c) = lock(&self.shared.connection).take() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

struct Receiver {
    host: String,
    port: u16,
    stream_id: usize,
    shared: Arc<Shared>,
    env: SourceEnv,
}

impl Receiver {
    fn info(&self, active: bool, error: Option<&str>) -> ReceiverInfo {
        ReceiverInfo {
            stream_id: self.stream_id,
            name: format!("SocketReceiver-{}", self.stream_id),
            active,
            worker: self.env.index,
            last_error_message: error.unwrap_or_default().to_owned(),
            last_error_time: error.map(|_| self.env.rt.now()),
        }
    }

    fn run(self) {
        let rt = Arc::clone(&self.env.rt);
        rt.post(Event::ReceiverStarted(self.info(true, None)));
        let delay = Duration::from_millis(rt.settings.restart_delay_ms);
        while !self.shared.stopped.load(Ordering::Acquire) && !rt.stopping() {
            let reason = match TcpStream::connect((self.host.as_str(), self.port)) {
                Err(e) => format!("Error connecting to {}:{}: {e}", self.host, self.port),
                Ok(conn) => {
                    if let Ok(c) = conn.try_clone() {
                        *lock(&self.shared.connection) = Some(c);
                    }
                    match self.read_lines(conn, &rt) {
                        Ok(()) => "Socket data stream had no more data".to_owned(),
                        Err(e) => format!("Error receiving data: {e}"),
                    }
                }
            };
            if self.shared.stopped.load(Ordering::Acquire) || rt.stopping() {
                break;
            }
            tracing::warn!("socket receiver {}: {reason}; restarting in {} ms", self.stream_id, delay.as_millis());
            rt.post(Event::ReceiverError(self.info(true, Some(&reason))));
            if !rt.sleeper.sleep(delay) {
                break;
            }
        }
        rt.post(Event::ReceiverStopped(self.info(false, None)));
    }

    /// Reads until the end of the stream; the lines go to the source as they arrive.
    fn read_lines(&self, conn: TcpStream, rt: &Runtime) -> std::io::Result<()> {
        let max = rt.settings.max_line_bytes;
        let mut reader = BufReader::with_capacity(64 * 1024, conn);
        let mut line: Vec<u8> = Vec::new();
        let mut skipping = false;
        let mut ready = Vec::new();
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                if !line.is_empty() && !skipping {
                    ready.push(decode(&line, rt));
                }
                self.deliver(&mut ready, rt);
                return Ok(());
            }
            let n = chunk.len();
            let mut rest = chunk;
            while !rest.is_empty() {
                let (part, found) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], true),
                    None => (rest, false),
                };
                if !skipping {
                    if line.len() + part.len() > max {
                        skipping = true;
                        line = Vec::new();
                    } else {
                        line.extend_from_slice(part);
                    }
                }
                if found {
                    if skipping {
                        rt.oversized.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("socket receiver {}: skipped a line longer than {max} bytes", self.stream_id);
                    } else {
                        ready.push(decode(&line, rt));
                    }
                    line.clear();
                    skipping = false;
                    rest = &rest[part.len() + 1..];
                } else {
                    rest = &[];
                }
            }
            reader.consume(n);
            self.deliver(&mut ready, rt);
        }
    }

    /// Hands lines to the source; while the buffer is full, waits (and so stops reading the
    /// connection: TCP pushes back on the sender).
    fn deliver(&self, ready: &mut Vec<String>, rt: &Runtime) {
        if ready.is_empty() {
            return;
        }
        let n = ready.len() as u64;
        let max = rt.settings.max_buffered_records;
        let mut lines = lock(&self.shared.lines);
        while lines.len() >= max && !self.shared.stopped.load(Ordering::Acquire) && !rt.stopping() {
            let _ = self.env.activator.activate();
            lines = self
                .shared
                .drained
                .wait_timeout(lines, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        lines.append(ready);
        drop(lines);
        let _ = self.env.activator.activate();
        rt.add_received(n);
    }
}

fn decode(bytes: &[u8], rt: &Runtime) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            rt.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

impl StreamingContext {
    /// Lines of text read from a TCP server at `host:port` (Spark's `socketTextStream`).
    pub fn socket_text_stream(&self, host: impl Into<String>, port: u16) -> DStream<String> {
        let host = host.into();
        self.input_stream("socket text stream", move |env, id, name| {
            let owner = id % env.peers == env.index;
            let host = host.clone();
            let s = source(env, name, id, move |senv| {
                let shared = Arc::new(Shared {
                    lines: Mutex::new(Vec::new()),
                    drained: Condvar::new(),
                    stopped: AtomicBool::new(false),
                    connection: Mutex::new(None),
                });
                if owner {
                    let receiver = Receiver { host, port, stream_id: id, shared: Arc::clone(&shared), env: senv };
                    let spawned = std::thread::Builder::new()
                        .name(format!("ember-socket-receiver-{id}"))
                        .spawn(move || receiver.run());
                    if let Err(e) = spawned {
                        shared.stopped.store(true, Ordering::Release);
                        tracing::error!("socket receiver {id}: could not start its thread: {e}");
                    }
                }
                Box::new(SocketDriver { shared })
            });
            env.round_robin(s)
        })
    }
}
