//! Splitting bytes into text lines, shared by the socket and file streams.
//!
//! Lines end at `\n` (a trailing `\r` is dropped) and are decoded as UTF-8, invalid sequences
//! replaced with U+FFFD as Spark's decoder does (such lines are counted). A line longer than
//! `receiver.max_line_bytes` is skipped, counted and logged — also the last line of an input
//! that ends without a newline — and never buffered beyond that bound.

use std::sync::atomic::Ordering;

use crate::exec::runtime::Runtime;

/// A line splitter fed with chunks of bytes.
pub(crate) struct Lines {
    max: usize,
    line: Vec<u8>,
    skipping: bool,
}

impl Lines {
    /// A splitter that skips lines longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Lines { max, line: Vec::new(), skipping: false }
    }

    /// Splits `chunk`: each complete line goes to `out`; a partial last line is kept for the
    /// next chunk. `what` names the input in the log.
    pub fn feed(&mut self, mut chunk: &[u8], rt: &Runtime, what: &str, out: &mut Vec<String>) {
        while !chunk.is_empty() {
            let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            if !self.skipping {
                if self.line.len() + part.len() > self.max {
                    self.skipping = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            if !found {
                return;
            }
            self.end_line(rt, what, out);
            chunk = &chunk[part.len() + 1..];
        }
    }

    /// The input ended: a last line without a newline goes to `out` (or is counted as skipped).
    pub fn finish(&mut self, rt: &Runtime, what: &str, out: &mut Vec<String>) {
        if self.skipping || !self.line.is_empty() {
            self.end_line(rt, what, out);
        }
    }

    fn end_line(&mut self, rt: &Runtime, what: &str, out: &mut Vec<String>) {
        if self.skipping {
            rt.oversized.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{what}: skipped a line longer than {} bytes", self.max);
            self.skipping = false;
        } else {
            out.push(decode(std::mem::take(&mut self.line), rt));
        }
        self.line.clear();
    }
}

/// The line as text: the buffer itself when it is valid UTF-8 (no copy).
fn decode(mut bytes: Vec<u8>, rt: &Runtime) -> String {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            rt.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<String>, u64, u64) {
        let rt = crate::exec::runtime::tests::runtime(crate::Conf::new());
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lines.feed(c, &rt, "test", &mut out);
        }
        lines.finish(&rt, "test", &mut out);
        rt.bus.shutdown();
        (out, rt.oversized.load(Ordering::Relaxed), rt.invalid_utf8.load(Ordering::Relaxed))
    }

    #[test]
    fn lines_across_chunks_crlf_and_a_last_line_without_newline() {
        let (out, skipped, bad) = split(100, &[b"ab", b"c\r\nde\n\nf", b"g"]);
        assert_eq!(out, vec!["abc", "de", "", "fg"]);
        assert_eq!((skipped, bad), (0, 0));
    }

    #[test]
    fn oversized_lines_are_counted_also_the_last_one() {
        let (out, skipped, _) = split(4, &[b"0123456\nok\n", b"toolong"]);
        assert_eq!(out, vec!["ok"]);
        assert_eq!(skipped, 2, "the last line, longer than the limit and without a newline, is counted too");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let (out, _, bad) = split(100, &[b"a\xffb\n"]);
        assert_eq!(out, vec!["a\u{fffd}b"]);
        assert_eq!(bad, 1);
    }
}
