//! Text helpers for record functions.

/// Splits an owned string into owned pieces, for `flat_map`: a closure given the record by value
/// cannot return an iterator that borrows it (`line.split(' ')` borrows `line`, which the closure
/// drops), so `lines.flat_map(|l| l.split_owned(' '))` does what Spark's
/// `lines.flatMap(_.split(" "))` does, without collecting each line's words into a `Vec` first.
/// The pieces are those of [`str::split`]: empty ones between adjacent separators and at the ends
/// are kept (Java's `split` drops the trailing ones).
///
/// ```
/// use ember::prelude::*;
/// let words: Vec<String> = "to be  or".to_string().split_owned(' ').collect();
/// assert_eq!(words, ["to", "be", "", "or"]);
/// let out = ember::testing::run_on_batches(vec![vec!["a b".to_string()]], |s| s.flat_map(|l| l.split_owned(' ')));
/// assert_eq!(out, vec![vec!["a".to_string(), "b".to_string()]]);
/// ```
pub trait SplitOwned {
    /// The pieces of `self` between occurrences of `separator`.
    fn split_owned(self, separator: char) -> Pieces;
}

impl SplitOwned for String {
    fn split_owned(self, separator: char) -> Pieces {
        Pieces { text: self, at: Some(0), separator }
    }
}

/// The pieces [`SplitOwned::split_owned`] yields.
#[derive(Debug, Clone)]
pub struct Pieces {
    text: String,
    /// Where the next piece starts; `None` once the last one was yielded.
    at: Option<usize>,
    separator: char,
}

impl Iterator for Pieces {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let start = self.at?;
        let rest = &self.text[start..];
        match rest.find(self.separator) {
            Some(i) => {
                self.at = Some(start + i + self.separator.len_utf8());
                Some(rest[..i].to_owned())
            }
            None => {
                self.at = None;
                Some(rest.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_those_of_str_split() {
        for text in ["", " ", "a", "a b", " a  b ", "é€x€", "€€"] {
            for sep in [' ', '€'] {
                let ours: Vec<String> = text.to_string().split_owned(sep).collect();
                let theirs: Vec<String> = text.split(sep).map(str::to_owned).collect();
                assert_eq!(ours, theirs, "{text:?} split at {sep:?}");
            }
        }
    }
}
