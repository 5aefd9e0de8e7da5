//! What can go wrong reading from and writing to Kafka.

/// A failure of a Kafka stream, sink or helper. It becomes the source of the [`ember::Error`] the
/// job reports (`ember::Error::Input` for a stream, `ember::Error::Output` for the sink), from
/// which it can be downcast back to this type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client (librdkafka) failed while doing `context`; `source` is its error.
    #[error("{context}: {source}")]
    Client {
        /// What the stream or sink was doing.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The parameters ask for something that cannot be done (a bad topic pattern, a number
    /// that is not one, no `bootstrap.servers`).
    #[error("{0}")]
    Config(String),
    /// The cluster does not have what the stream needs (an assigned partition, an offset), or
    /// did not answer in time.
    #[error("{0}")]
    Cluster(String),
    /// Records were not delivered.
    #[error("{0}")]
    Delivery(String),
}

impl Error {
    pub(crate) fn client(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Client { context: context.into(), source }
    }
}

impl From<Error> for ember::Error {
    fn from(e: Error) -> Self {
        ember::Error::external("kafka", e)
    }
}
