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
        // An ASCII separator is one byte that never occurs inside a multi-byte character: a byte
        // scan finds it, cheaper than a string search for words a few bytes long.
        let found = match u8::try_from(self.separator) {
            Ok(b) if b.is_ascii() => rest.as_bytes().iter().position(|&x| x == b),
            _ => rest.find(self.separator),
        };
        match found {
            Some(i) => {
                self.at = Some(start + i + self.separator.len_utf8());
                Some(rest[..i].to_owned())
            }
            None => {
                // The last piece reuses the string's own buffer instead of a new one.
                self.at = None;
                let mut last = std::mem::take(&mut self.text);
                last.drain(..start);
                Some(last)
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

    proptest::proptest! {
        #[test]
        fn pieces_of_any_text_are_those_of_str_split(text in "[a €é\n]{0,40}", sep in proptest::sample::select(vec![' ', '€', 'a', '\n'])) {
            let ours: Vec<String> = text.clone().split_owned(sep).collect();
            let theirs: Vec<String> = text.split(sep).map(str::to_owned).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
