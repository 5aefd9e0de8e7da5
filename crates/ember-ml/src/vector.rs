//! Feature vectors and labeled points, and the text forms Spark's examples use.
//!
//! - [`Vector`]: dense (`Vec<f64>`) or sparse (size, ascending indices, values), parsed from
//!   Spark's `Vectors.parse` forms `[1.0,2.0]` and `(3,[0,2],[1.0,2.0])`.
//! - [`LabeledPoint`]: a label and features, parsed from `LabeledPoint.parse`'s `(1.0,[1.0,2.0])`
//!   (or with a sparse vector) and from libsvm lines `1 1:0.5 3:2.0` (1-based indices).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A feature vector: dense, or sparse with ascending indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Vector {
    /// Every value.
    Dense(Vec<f64>),
    /// `size` values, all zero but those at `indices` (ascending, distinct).
    Sparse {
        /// The vector's dimension.
        size: usize,
        /// Where the non-zero values are.
        indices: Vec<usize>,
        /// The values at `indices`.
        values: Vec<f64>,
    },
}

/// A text that is not a vector or labeled point, with what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse `{text}`: {reason}")]
pub struct ParseError {
    /// The text (cut to 80 characters).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

fn parse_error(text: &str, reason: impl Into<String>) -> ParseError {
    ParseError { text: text.chars().take(80).collect(), reason: reason.into() }
}

impl Vector {
    /// A dense vector.
    pub fn dense(values: impl Into<Vec<f64>>) -> Self {
        Vector::Dense(values.into())
    }

    /// A sparse vector; indices must be ascending, distinct and below `size`.
    pub fn sparse(size: usize, indices: Vec<usize>, values: Vec<f64>) -> Result<Self, String> {
        if indices.len() != values.len() {
            return Err(format!("{} indices but {} values", indices.len(), values.len()));
        }
        if indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err("indices must be ascending and distinct".into());
        }
        if let Some(&last) = indices.last() {
            if last >= size {
                return Err(format!("index {last} is out of a vector of size {size}"));
            }
        }
        Ok(Vector::Sparse { size, indices, values })
    }

    /// The dimension.
    pub fn size(&self) -> usize {
        match self {
            Vector::Dense(v) => v.len(),
            Vector::Sparse { size, .. } => *size,
        }
    }

    /// The non-zero entries (for a dense vector, every entry) as `(index, value)`.
    pub fn entries(&self) -> Box<dyn Iterator<Item = (usize, f64)> + '_> {
        match self {
            Vector::Dense(v) => Box::new(v.iter().copied().enumerate()),
            Vector::Sparse { indices, values, .. } => Box::new(indices.iter().copied().zip(values.iter().copied())),
        }
    }

    /// Whether every value is finite (no NaN, no infinity).
    pub fn is_finite(&self) -> bool {
        self.entries().all(|(_, x)| x.is_finite())
    }

    /// The values as a dense `Vec`.
    pub fn to_dense(&self) -> Vec<f64> {
        match self {
            Vector::Dense(v) => v.clone(),
            Vector::Sparse { size, .. } => {
                let mut d = vec![0.0; *size];
                self.add_to(1.0, &mut d);
                d
            }
        }
    }

    /// The dot product with a dense vector of the same size.
    pub fn dot(&self, dense: &[f64]) -> f64 {
        match self {
            Vector::Dense(v) => v.iter().zip(dense).map(|(a, b)| a * b).sum(),
            Vector::Sparse { indices, values, .. } => indices.iter().zip(values).map(|(&i, v)| v * dense[i]).sum(),
        }
    }

    /// `acc += a * self` (BLAS `axpy`).
    pub fn add_to(&self, a: f64, acc: &mut [f64]) {
        match self {
            Vector::Dense(v) => acc.iter_mut().zip(v).for_each(|(x, v)| *x += a * v),
            Vector::Sparse { indices, values, .. } => {
                indices.iter().zip(values).for_each(|(&i, v)| acc[i] += a * v);
            }
        }
    }

    /// The squared Euclidean distance to a dense vector of the same size.
    pub fn squared_distance(&self, dense: &[f64]) -> f64 {
        match self {
            Vector::Dense(v) => v.iter().zip(dense).map(|(a, b)| (a - b) * (a - b)).sum(),
            Vector::Sparse { indices, values, .. } => {
                // Every coordinate counts: the zeros' distance is the dense value's square.
                let mut sum: f64 = dense.iter().map(|b| b * b).sum();
                for (&i, v) in indices.iter().zip(values) {
                    sum += (v - dense[i]) * (v - dense[i]) - dense[i] * dense[i];
                }
                sum.max(0.0)
            }
        }
    }
}

impl From<Vec<f64>> for Vector {
    fn from(v: Vec<f64>) -> Self {
        Vector::Dense(v)
    }
}

impl fmt::Display for Vector {
    /// Spark's text form: `[1.0,2.0]` or `(3,[0,2],[1.0,2.0])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |xs: &[f64]| xs.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
        match self {
            Vector::Dense(v) => write!(f, "[{}]", list(v)),
            Vector::Sparse { size, indices, values } => {
                let idx = indices.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                write!(f, "({size},[{idx}],[{}])", list(values))
            }
        }
    }
}

fn numbers(text: &str, list: &str) -> Result<Vec<f64>, ParseError> {
    let list = list.trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|x| x.trim().parse::<f64>().map_err(|_| parse_error(text, format!("`{}` is not a number", x.trim()))))
        .collect()
}

/// Splits `[..]` off the front of `s`: the inside and the rest.
fn bracketed<'a>(text: &str, s: &'a str) -> Result<(&'a str, &'a str), ParseError> {
    let s = s.trim_start();
    let inner = s.strip_prefix('[').ok_or_else(|| parse_error(text, "expected `[`"))?;
    let end = inner.find(']').ok_or_else(|| parse_error(text, "missing `]`"))?;
    Ok((&inner[..end], &inner[end + 1..]))
}

fn parse_vector(text: &str, s: &str) -> Result<(Vector, usize), ParseError> {
    let t = s.trim_start();
    let skipped = s.len() - t.len();
    if t.starts_with('[') {
        let (inside, rest) = bracketed(text, t)?;
        return Ok((Vector::Dense(numbers(text, inside)?), skipped + t.len() - rest.len()));
    }
    let body = t.strip_prefix('(').ok_or_else(|| parse_error(text, "a vector starts with `[` or `(`"))?;
    let (size, rest) = body.split_once(',').ok_or_else(|| parse_error(text, "expected `(size,[indices],[values])`"))?;
    let size: usize = size.trim().parse().map_err(|_| parse_error(text, format!("`{}` is not a size", size.trim())))?;
    let (idx, rest) = bracketed(text, rest)?;
    let rest =
        rest.trim_start().strip_prefix(',').ok_or_else(|| parse_error(text, "expected `,` after the indices"))?;
    let (vals, rest) = bracketed(text, rest)?;
    let rest = rest.trim_start().strip_prefix(')').ok_or_else(|| parse_error(text, "missing `)`"))?;
    let indices = numbers(text, idx)?
        .into_iter()
        .map(|i| {
            if i >= 0.0 && i.fract() == 0.0 {
                Ok(i as usize)
            } else {
                Err(parse_error(text, "an index is not a whole number"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let v = Vector::sparse(size, indices, numbers(text, vals)?).map_err(|m| parse_error(text, m))?;
    Ok((v, skipped + t.len() - rest.len()))
}

impl FromStr for Vector {
    type Err = ParseError;

    /// Spark's `Vectors.parse`: `[1.0,2.0]` or `(3,[0,2],[1.0,2.0])`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (v, used) = parse_vector(s, s)?;
        if !s[used..].trim().is_empty() {
            return Err(parse_error(s, "text after the vector"));
        }
        Ok(v)
    }
}

/// A label and its features (Spark's `LabeledPoint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledPoint {
    /// The label (a class 0.0/1.0 for logistic regression).
    pub label: f64,
    /// The features.
    pub features: Vector,
}

impl LabeledPoint {
    /// A point.
    pub fn new(label: f64, features: impl Into<Vector>) -> Self {
        LabeledPoint { label, features: features.into() }
    }

    /// A libsvm line: `label index:value ...` with 1-based, ascending indices; `size` is the
    /// vector's dimension (libsvm lines do not say it).
    pub fn parse_libsvm(line: &str, size: usize) -> Result<Self, ParseError> {
        let mut parts = line.split_whitespace();
        let label = parts.next().ok_or_else(|| parse_error(line, "empty line"))?;
        let label = label.parse().map_err(|_| parse_error(line, format!("`{label}` is not a label")))?;
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        for p in parts {
            let (i, v) = p.split_once(':').ok_or_else(|| parse_error(line, format!("`{p}` is not index:value")))?;
            let i: usize = i.parse().map_err(|_| parse_error(line, format!("`{i}` is not an index")))?;
            if i == 0 {
                return Err(parse_error(line, "libsvm indices start at 1"));
            }
            indices.push(i - 1);
            values.push(v.parse().map_err(|_| parse_error(line, format!("`{v}` is not a number")))?);
        }
        let features = Vector::sparse(size, indices, values).map_err(|m| parse_error(line, m))?;
        Ok(LabeledPoint { label, features })
    }
}

impl FromStr for LabeledPoint {
    type Err = ParseError;

    /// Spark's `LabeledPoint.parse`: `(label,vector)`, e.g. `(1.0,[1.0,2.0])`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let body = s.trim().strip_prefix('(').ok_or_else(|| parse_error(s, "a labeled point starts with `(`"))?;
        let (label, rest) = body.split_once(',').ok_or_else(|| parse_error(s, "expected `(label,vector)`"))?;
        let label = label.trim().parse().map_err(|_| parse_error(s, format!("`{}` is not a label", label.trim())))?;
        let (features, used) = parse_vector(s, rest)?;
        let tail = rest[used..].trim();
        if tail != ")" {
            return Err(parse_error(s, "expected `)` after the vector"));
        }
        Ok(LabeledPoint { label, features })
    }
}

impl fmt::Display for LabeledPoint {
    /// Spark's text form, `(1.0,[1.0,2.0])`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:?},{})", self.label, self.features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_text_forms_round_trip() {
        for text in ["[1.0,-2.5,0.0]", "(4,[0,3],[1.5,2.0])", "[]", "(3,[],[])"] {
            let v: Vector = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
        let p: LabeledPoint = " (1.0, [2.0, 3.0]) ".parse().unwrap();
        assert_eq!(p, LabeledPoint::new(1.0, vec![2.0, 3.0]));
        let p: LabeledPoint = "(0.0,(3,[1],[4.0]))".parse().unwrap();
        assert_eq!(p.features.to_dense(), vec![0.0, 4.0, 0.0]);
        assert_eq!(p.to_string(), "(0.0,(3,[1],[4.0]))");
    }

    #[test]
    fn malformed_text_says_what_is_wrong() {
        let e = "[1.0,x]".parse::<Vector>().unwrap_err();
        assert!(e.to_string().contains("`x` is not a number"), "{e}");
        assert!("(3,[2,1],[1.0,2.0])".parse::<Vector>().unwrap_err().reason.contains("ascending"));
        assert!("(2,[5],[1.0])".parse::<Vector>().unwrap_err().reason.contains("out of a vector"));
        assert!("(1.0,[2.0]".parse::<LabeledPoint>().is_err());
        assert!("[1.0] tail".parse::<Vector>().is_err());
    }

    #[test]
    fn libsvm_lines() {
        let p = LabeledPoint::parse_libsvm("1 1:0.5 3:2", 4).unwrap();
        assert_eq!(p.features.to_dense(), vec![0.5, 0.0, 2.0, 0.0]);
        assert!(LabeledPoint::parse_libsvm("1 0:0.5", 4).unwrap_err().reason.contains("start at 1"));
        assert!(LabeledPoint::parse_libsvm("1 5:0.5", 4).is_err());
    }

    #[test]
    fn sparse_and_dense_agree() {
        let s = Vector::sparse(4, vec![1, 3], vec![2.0, -1.0]).unwrap();
        let d = Vector::dense(s.to_dense());
        let c = [0.5, 1.0, -2.0, 3.0];
        assert_eq!(s.dot(&c), d.dot(&c));
        assert!((s.squared_distance(&c) - d.squared_distance(&c)).abs() < 1e-12);
    }
}
