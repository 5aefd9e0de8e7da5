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
    #[error("output operation {id} (`{name}`) failed at batch {time}: {message}")]
    Output {
        /// The output operation's index in declaration order.
        id: usize,
        /// The output operation's name.
        name: String,
        /// The batch.
        time: Time,
        /// The failure.
        message: String,
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
    /// An input/output error of the file system or the network.
    #[error("{context}: {message}")]
    Io {
        /// What Ember was doing.
        context: String,
        /// The operating system's message.
        message: String,
    },
    /// An input stream could not read a batch (e.g. its broker stayed unreachable); the batch's
    /// outputs do not run and the job stops.
    #[error("input stream `{stream}` failed at batch {time}: {message}")]
    Input {
        /// The input stream's display name.
        stream: String,
        /// The batch.
        time: Time,
        /// The failure.
        message: String,
    },
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

impl Error {
    pub(crate) fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        Error::Io { context: context.into(), message: err.to_string() }
    }

    pub(crate) fn declaration(operation: &str, message: impl Into<String>) -> Self {
        Error::Declaration { operation: operation.to_owned(), message: message.into() }
    }
}

/// Ember's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
