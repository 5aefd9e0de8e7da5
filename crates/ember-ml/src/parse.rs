//! Streams of text lines to streams of vectors and labeled points, in Spark's text forms; a line
//! that does not parse is skipped, counted and logged (the first 10, then every 1000th).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ember::operator::count_skipped;
use ember::{DStream, Data};

use crate::vector::{LabeledPoint, ParseError, Vector};

fn parsed<T: Data>(
    lines: &DStream<String>,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, ParseError> + Send + Sync + 'static,
) -> (DStream<T>, Arc<AtomicU64>) {
    let skipped = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&skipped);
    let stream = lines.flat_map(move |line: String| match parse(&line) {
        Ok(x) => Some(x),
        Err(e) => {
            if let Some(n) = count_skipped(&counter) {
                tracing::warn!("{what}: {e}; the line is skipped ({n} so far)");
            }
            None
        }
    });
    (stream, skipped)
}

/// Every line as a [`Vector`] (`[1.0,2.0]` or `(3,[0,2],[1.0,2.0])`), with the count of the
/// lines skipped in this process.
pub fn parse_vectors(lines: &DStream<String>) -> (DStream<Vector>, Arc<AtomicU64>) {
    parsed(lines, "vectors", |l| l.parse())
}

/// Every line as a [`LabeledPoint`] (`(1.0,[2.0,3.0])`), with the count of the lines skipped
/// in this process.
pub fn parse_labeled_points(lines: &DStream<String>) -> (DStream<LabeledPoint>, Arc<AtomicU64>) {
    parsed(lines, "labeled points", |l| l.parse())
}

/// Every libsvm line (`label index:value ...`, 1-based indices) as a [`LabeledPoint`] of `size`
/// features, with the count of the lines skipped in this process.
pub fn parse_libsvm(lines: &DStream<String>, size: usize) -> (DStream<LabeledPoint>, Arc<AtomicU64>) {
    parsed(lines, "libsvm lines", move |l| LabeledPoint::parse_libsvm(l, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_skipped_and_counted() {
        let ssc = ember::testing::manual_context("local[2]");
        let lines =
            ssc.queue_stream(vec![vec!["[1.0,2.0]".to_string(), "nonsense".into(), "(2,[1],[5.0])".into()]], true);
        let (vectors, skipped) = parse_vectors(&lines);
        let out = vectors.collect_batches();
        let libsvm = ssc.queue_stream(vec![vec!["1 1:0.5".to_string(), "1 0:0.5".into()]], true);
        let (points, bad_svm) = parse_libsvm(&libsvm, 2);
        let points = points.collect_batches();
        ssc.run_batches(1).unwrap();
        ssc.stop(false).unwrap();
        let got = out.batches()[0].1.clone();
        assert_eq!(got.len(), 2);
        assert!(
            got.contains(&Vector::dense([1.0, 2.0])) && got.contains(&Vector::sparse(2, vec![1], vec![5.0]).unwrap())
        );
        assert_eq!(skipped.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(points.batches()[0].1, vec![LabeledPoint::new(1.0, Vector::sparse(2, vec![0], vec![0.5]).unwrap())]);
        assert_eq!(bad_svm.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
