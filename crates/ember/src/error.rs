//! Ember's one error type.
//!
//! Variants separate the user's mistakes (configuration, lifecycle, declarations), failures of
//! external systems (I/O, cluster communication) and Ember's own bugs (`Internal`).

use crate::time::Time;

/// Everything that can go wrong in Ember.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key has a value Ember cannot use.
    #[error("configuration key `{key}` has the invalid value `{value}`: expected {expected}")]
    Config {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// The accepted forms.
        expected: String,
    },
    /// A configuration key Ember does not know.
    #[error("unknown configuration key `{key}`; known keys: {known}")]
    UnknownConfigKey {
        /// The key as given.
        key: String,
        /// The keys Ember knows, comma-separated.
        known: String,
    },
    /// A call that the context's state does not allow (Spark's `IllegalStateException`).
    #[error("{0}")]
    IllegalState(String),
    /// A stream operation declared with arguments Ember cannot use.
    #[error("invalid declaration of `{operation}`: {message}")]
    Declaration {
        /// The operation, as named in the API.
        operation: String,
        /// What is wrong.
        message: String,
    },
    /// An output operation failed (its function returned an error or panicked).
    #[error("output operation {id} (`{name}`) failed at batch {time}: {source}")]
    Output {
        /// The output operation's index in declaration order.
        id: usize,
        /// The output operation's name.
        name: String,
        /// The batch.
        time: Time,
        /// The failure: the error the output returned (downcast it to its own type), or the
        /// panic's message.
        #[source]
        source: Cause,
    },
    /// The user's function of an operation panicked while processing a batch; the batch's outputs
    /// do not run, no checkpoint at or after it commits, and the job stops.
    #[error("the function of `{operation}` panicked at batch {time}: {message}")]
    UserCode {
        /// The operation, as named in the API (or the timely operator's name).
        operation: String,
        /// The batch.
        time: Time,
        /// The panic's message.
        message: String,
    },
    /// An input/output error of the file system or the network; `source` keeps the
    /// operating system's error (its [`kind`](std::io::Error::kind) included).
    #[error("{context}: {source}")]
    Io {
        /// What Ember was doing.
        context: String,
        /// The error itself (an [`std::io::Error`]).
        #[source]
        source: Cause,
    },
    /// A failure of another library or system (a client, a driver, a codec), kept whole:
    /// [`std::error::Error::source`] reaches it, so it can be downcast to its own type.
    #[error("{context}: {source}")]
    External {
        /// What was being done.
        context: String,
        /// The error itself.
        #[source]
        source: Cause,
    },
    /// An input stream could not read a batch (e.g. its broker stayed unreachable); the batch's
    /// outputs do not run and the job stops.
    #[error("input stream `{stream}` failed at batch {time}: {source}")]
    Input {
        /// The input stream's display name.
        stream: String,
        /// The batch.
        time: Time,
        /// The failure, as the source reported it (downcast it to the source's error type).
        #[source]
        source: Cause,
    },
    /// A failure a source, receiver or sink describes in words, with no error value of its own.
    #[error("{0}")]
    Other(String),
    /// A process of the job was lost or failed, or the processes could not connect: names the
    /// process and why.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Starting or running the timely execution failed (e.g. the cluster could not connect).
    #[error("execution failed: {0}")]
    Execution(String),
    /// A checkpoint file that does not read back (truncated, a flipped byte, another format).
    #[error("corrupt checkpoint file `{what}`: {reason}")]
    Corrupt {
        /// The file.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Recovering from a checkpoint directory failed.
    #[error("cannot recover from the checkpoint: {0}")]
    Recovery(String),
    /// A broken invariant inside Ember: a bug, please report it.
    #[error("internal error (a bug in Ember): {0}")]
    Internal(String),
}

/// The error another library or the system reported, shared so that [`Error`] stays `Clone`.
/// It dereferences to the error itself, which [`std::error::Error::source`] returns, so it can be
/// downcast to its own type.
#[derive(Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `err` whole.
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Cause(std::sync::Arc::from(err.into()))
    }
}

impl std::ops::Deref for Cause {
    type Target = dyn std::error::Error + Send + Sync;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl Error {
    /// An I/O error while doing `context`.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        Error::Io { context: context.into(), source: Cause(std::sync::Arc::new(err)) }
    }

    /// Another library's error while doing `context`, kept whole (see [`Error::External`]).
    ///
    /// ```
    /// let e = ember::Error::external("parsing a price", "x1".parse::<u32>().unwrap_err());
    /// assert_eq!(e.to_string(), "parsing a price: invalid digit found in string");
    /// let source = std::error::Error::source(&e).unwrap();
    /// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    pub fn external(context: impl Into<String>, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::External { context: context.into(), source: Cause(std::sync::Arc::new(err)) }
    }

    /// The kind of the I/O error behind this one, if it is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } | Error::External { source, .. } => {
                source.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
            }
            _ => None,
        }
    }

    pub(crate) fn declaration(operation: &str, message: impl Into<String>) -> Self {
        Error::Declaration { operation: operation.to_owned(), message: message.into() }
    }
}

/// Ember's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_kind_and_source() {
        let e = Error::io("reading the input", std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "reading the input: no such file");
        assert!(std::error::Error::source(&e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()));
        let wrapped = Error::external("a client", std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(wrapped.io_kind(), Some(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(Error::Internal("x".into()).io_kind(), None);
        let cloned = wrapped.clone();
        assert_eq!(cloned.to_string(), wrapped.to_string());
    }
}
