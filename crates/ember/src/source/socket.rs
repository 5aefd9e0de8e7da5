//! `socket_text_stream`: lines from a TCP server (spec §2.2), a [`Receiver`] like any other.
//!
//! It connects as a client, splits on `\n` (a trailing `\r` is dropped), and decodes UTF-8,
//! replacing invalid sequences with U+FFFD as Spark's decoder does (such lines are counted).
//! Lines longer than `receiver.max_line_bytes` are skipped, counted and logged, and never
//! buffered beyond that bound. When the server is not up, closes the connection or fails, the
//! receiver reports the error and reconnects after `receiver.restart_delay`, for as long as the
//! context runs. When Ember's buffer is full (the job is behind), it stops reading, so TCP pushes
//! back on the sender.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;

use super::receiver::{Receiver, ReceiverContext};
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::runtime::Runtime;

/// Reads lines from `host:port`.
pub struct SocketReceiver {
    host: String,
    port: u16,
}

impl Receiver<String> for SocketReceiver {
    fn name(&self) -> String {
        "SocketReceiver".to_owned()
    }

    fn on_start(&mut self, ctx: &ReceiverContext<String>) -> Result<(), String> {
        let conn = TcpStream::connect((self.host.as_str(), self.port))
            .map_err(|e| format!("Error connecting to {}:{}: {e}", self.host, self.port))?;
        if let Ok(c) = conn.try_clone() {
            ctx.on_interrupt(move || {
                let _ = c.shutdown(Shutdown::Both);
            });
        }
        match read_lines(conn, ctx) {
            _ if ctx.is_stopped() => Ok(()),
            Ok(()) => Err("Socket data stream had no more data".to_owned()),
            Err(e) => Err(format!("Error receiving data: {e}")),
        }
    }
}

/// Reads until the end of the stream; lines go to Ember as they arrive.
fn read_lines(conn: TcpStream, ctx: &ReceiverContext<String>) -> std::io::Result<()> {
    let rt = ctx.runtime();
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
            ctx.store_many(std::mem::take(&mut ready));
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
                    tracing::warn!("socket receiver: skipped a line longer than {max} bytes");
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
        ctx.store_many(std::mem::take(&mut ready));
        if ctx.should_return() {
            return Ok(());
        }
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
        self.receiver_stream(SocketReceiver { host: host.into(), port })
    }
}
