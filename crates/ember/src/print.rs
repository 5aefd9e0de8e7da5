//! How records are printed by `print()` and written by `save_as_text_files` — Spark's `toString`.
//!
//! Pairs and tuples print in Scala's form, `(hello,1)`; strings print bare; floats keep their
//! decimal point (`1.0`); `Option` prints as `Some(x)`/`None`; a `Vec` prints as `[a, b]` (Spark
//! would print a JVM array reference or `CompactBuffer(a, b)`). Implement [`Printable`] for your
//! own record types.

/// A record that can be printed the way Spark prints it.
pub trait Printable {
    /// Appends the record's text to `out`.
    fn print_to(&self, out: &mut String);

    /// The record's text.
    fn to_printed(&self) -> String {
        let mut s = String::new();
        self.print_to(&mut s);
        s
    }
}

macro_rules! display_printable {
    ($($t:ty),*) => {$(
        impl Printable for $t {
            fn print_to(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
display_printable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char, String, str);

macro_rules! float_printable {
    ($($t:ty),*) => {$(
        impl Printable for $t {
            fn print_to(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{:?}", self);
            }
        }
    )*};
}
float_printable!(f32, f64);

impl<T: Printable + ?Sized> Printable for &T {
    fn print_to(&self, out: &mut String) {
        (**self).print_to(out)
    }
}

impl<T: Printable> Printable for Option<T> {
    fn print_to(&self, out: &mut String) {
        match self {
            Some(x) => {
                out.push_str("Some(");
                x.print_to(out);
                out.push(')');
            }
            None => out.push_str("None"),
        }
    }
}

impl<T: Printable> Printable for Vec<T> {
    fn print_to(&self, out: &mut String) {
        out.push('[');
        for (i, x) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            x.print_to(out);
        }
        out.push(']');
    }
}

macro_rules! tuple_printable {
    ($($name:ident)+) => {
        impl<$($name: Printable),+> Printable for ($($name,)+) {
            #[allow(non_snake_case)]
            fn print_to(&self, out: &mut String) {
                let ($($name,)+) = self;
                out.push('(');
                let mut first = true;
                $(
                    if !first { out.push(','); }
                    first = false;
                    $name.print_to(out);
                )+
                let _ = first;
                out.push(')');
            }
        }
    };
}
tuple_printable!(A B);
tuple_printable!(A B C);
tuple_printable!(A B C D);

#[cfg(test)]
mod tests {
    use super::Printable;

    #[test]
    fn prints_like_spark() {
        assert_eq!(("hello".to_string(), 1u64).to_printed(), "(hello,1)");
        assert_eq!(("a", (1, Some(2.0f64))).to_printed(), "(a,(1,Some(2.0)))");
        assert_eq!(vec![1, 2].to_printed(), "[1, 2]");
        assert_eq!(Option::<i32>::None.to_printed(), "None");
    }
}
