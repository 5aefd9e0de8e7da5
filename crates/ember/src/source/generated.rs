//! The built-in generated text: lines of words from a fixed vocabulary with a Zipf-like skew,
//! at a set rate, seeded — for demos and benchmarks with no other input.
//!
//! Every worker produces its share of each batch: `lines_per_second × interval` lines per batch in
//! all, whatever the clock. With the system clock a batch's lines are produced as its time passes;
//! when processing falls behind, batches keep their size and queue up (scheduling delay grows).

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::source::{source, SourceDriver};
use crate::time::Time;

/// Settings of the generated text source.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedText {
    /// Lines per second, all workers together.
    pub lines_per_second: u64,
    /// Words per line.
    pub words_per_line: usize,
    /// Distinct words.
    pub vocabulary: usize,
    /// Zipf exponent of word frequencies (0 = uniform).
    pub skew: f64,
    /// Random seed.
    pub seed: u64,
}

/// A deterministic generator of text lines, usable on its own (benchmarks compare the engine
/// against a hand-written loop over exactly these lines).
#[derive(Debug, Clone)]
pub struct LineGenerator {
    words: Vec<String>,
    cdf: Vec<f64>,
    words_per_line: usize,
    pub(crate) state: u64,
}

const SYLLABLES: [&str; 16] =
    ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fu", "ga", "hi", "jo", "pe", "zu"];

/// The `i`-th word of the vocabulary.
fn word(mut i: usize) -> String {
    let mut w = String::new();
    loop {
        w.push_str(SYLLABLES[i % 16]);
        i /= 16;
        if i == 0 {
            break;
        }
    }
    w
}

impl LineGenerator {
    /// A generator with `settings`, for the share of worker `index`.
    pub fn new(settings: &GeneratedText, index: usize) -> Self {
        let n = settings.vocabulary.max(1);
        let words = (0..n).map(word).collect();
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for i in 0..n {
            total += 1.0 / ((i + 1) as f64).powf(settings.skew.max(0.0));
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        LineGenerator {
            words,
            cdf,
            words_per_line: settings.words_per_line.max(1),
            state: settings.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next line.
    pub fn next_line(&mut self) -> String {
        let mut line = String::with_capacity(self.words_per_line * 8);
        for i in 0..self.words_per_line {
            let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let k = self.cdf.partition_point(|&c| c < u).min(self.words.len() - 1);
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&self.words[k]);
        }
        line
    }
}

struct GeneratedDriver {
    generator: LineGenerator,
    /// This worker's lines per batch.
    share: u64,
    produced: u64,
    batch_ms: u64,
    rt: std::sync::Arc<crate::exec::runtime::Runtime>,
    worker: usize,
}

/// Lines produced per activation at most, so one source does not hold its worker too long.
const CHUNK: u64 = 4096;

impl SourceDriver<String> for GeneratedDriver {
    fn poll(&mut self, open: Time, out: &mut Vec<String>) -> bool {
        let start = open.millis() - self.batch_ms;
        let elapsed = self.rt.now().saturating_sub(start).min(self.batch_ms);
        let target = (self.share as u128 * elapsed as u128 / self.batch_ms as u128) as u64;
        let n = target.saturating_sub(self.produced).min(CHUNK);
        out.extend((0..n).map(|_| self.generator.next_line()));
        self.produced += n;
        self.produced < target
    }

    fn close(&mut self, _t: Time, out: &mut Vec<String>) {
        let n = self.share.saturating_sub(self.produced);
        out.extend((0..n).map(|_| self.generator.next_line()));
        self.produced = 0;
    }

    fn position(&self) -> Option<Vec<u8>> {
        Some(self.generator.state.to_le_bytes().to_vec())
    }

    fn restore(&mut self, position: &[u8]) -> crate::Result<()> {
        let bytes: [u8; 8] = position.try_into().map_err(|_| crate::Error::Corrupt {
            what: "generated text position".into(),
            reason: "not 8 bytes".into(),
        })?;
        self.generator.state = u64::from_le_bytes(bytes);
        Ok(())
    }

    /// A rescale: a worker that existed before goes on with its old generator; a new one starts
    /// its own (seeded by its index, as at a first start).
    fn restore_rescaled(&mut self, positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        match positions.into_iter().find(|(w, _)| *w == self.worker) {
            Some((_, p)) => self.restore(&p),
            None => Ok(()),
        }
    }
}

impl StreamingContext {
    /// Generated text with the `generated.*` settings of the configuration.
    pub fn generated_text_stream(&self) -> DStream<String> {
        let g = &self.shared.settings.generated;
        self.generated_text_stream_with(GeneratedText {
            lines_per_second: g.lines_per_second,
            words_per_line: g.words_per_line,
            vocabulary: g.vocabulary,
            skew: g.skew,
            seed: g.seed,
        })
    }

    /// Generated text with explicit settings.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use ember::source::generated::GeneratedText;
    /// let ssc = manual_context("local[2]");
    /// let text = GeneratedText { lines_per_second: 10, words_per_line: 3, vocabulary: 5, skew: 1.0, seed: 1 };
    /// let counts = ssc.generated_text_stream_with(text).count().collect_batches();
    /// ssc.run_batches(2).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(counts.batches().iter().map(|(_, c)| c[0]).collect::<Vec<_>>(), vec![10, 10]);
    /// ```
    pub fn generated_text_stream_with(&self, settings: GeneratedText) -> DStream<String> {
        let batch_ms = self.shared.batch_ms;
        let per_batch = (settings.lines_per_second as u128 * batch_ms as u128 / 1000) as u64;
        self.input_stream("generated text", &format!("seed {}", settings.seed), move |env, id, name| {
            let (index, peers) = (env.index, env.peers as u64);
            let share = per_batch / peers + u64::from((index as u64) < per_batch % peers);
            let settings = settings.clone();
            source(env, name, id, move |senv| {
                Box::new(GeneratedDriver {
                    generator: LineGenerator::new(&settings, index),
                    share,
                    produced: 0,
                    batch_ms,
                    rt: senv.rt,
                    worker: index,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_seeded_and_skewed() {
        let s = GeneratedText { lines_per_second: 1, words_per_line: 8, vocabulary: 10_000, skew: 1.0, seed: 7 };
        let mut a = LineGenerator::new(&s, 0);
        let mut b = LineGenerator::new(&s, 0);
        let la: Vec<String> = (0..100).map(|_| a.next_line()).collect();
        let lb: Vec<String> = (0..100).map(|_| b.next_line()).collect();
        assert_eq!(la, lb);
        assert!(la.iter().all(|l| l.split(' ').count() == 8));
        let top = la.iter().flat_map(|l| l.split(' ')).filter(|w| *w == word(0)).count();
        assert!(top > 40, "the most frequent word appears often under Zipf skew: {top}");
        assert_ne!(word(1), word(16));
    }
}
