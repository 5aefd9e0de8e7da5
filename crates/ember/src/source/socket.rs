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

use super::lines::Lines;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::Error;
use crate::operator::{Receiver, ReceiverContext};

/// Reads lines from `host:port`.
pub struct SocketReceiver {
    host: String,
    port: u16,
}

impl Receiver<String> for SocketReceiver {
    fn name(&self) -> String {
        "SocketReceiver".to_owned()
    }

    fn source(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn on_start(&mut self, ctx: &ReceiverContext<String>) -> crate::Result<()> {
        let conn = TcpStream::connect((self.host.as_str(), self.port))
            .map_err(|e| Error::io(format!("Error connecting to {}:{}", self.host, self.port), e))?;
        if let Ok(c) = conn.try_clone() {
            ctx.on_interrupt(move || {
                let _ = c.shutdown(Shutdown::Both);
            });
        }
        match read_lines(conn, ctx) {
            _ if ctx.is_stopped() => Ok(()),
            Ok(()) => Err(Error::Other("Socket data stream had no more data".to_owned())),
            Err(e) => Err(Error::io("Error receiving data", e)),
        }
    }
}

/// Reads until the end of the stream; lines go to Ember as they arrive.
fn read_lines(conn: TcpStream, ctx: &ReceiverContext<String>) -> std::io::Result<()> {
    let rt = ctx.runtime();
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    let mut lines = Lines::new(rt.settings.max_line_bytes);
    let mut ready = Vec::new();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            lines.finish(rt, "socket receiver", &mut ready);
            ctx.store_many(ready);
            return Ok(());
        }
        let n = chunk.len();
        lines.feed(chunk, rt, "socket receiver", &mut ready);
        reader.consume(n);
        ctx.store_many(std::mem::take(&mut ready));
        if ctx.should_return() {
            return Ok(());
        }
    }
}

impl StreamingContext {
    /// Lines of text read from a TCP server at `host:port` (Spark's `socketTextStream`).
    pub fn socket_text_stream(&self, host: impl Into<String>, port: u16) -> DStream<String> {
        self.receiver_stream(SocketReceiver { host: host.into(), port })
    }
}
