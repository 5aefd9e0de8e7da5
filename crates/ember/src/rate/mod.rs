//! Flow control: rate limits and backpressure (spec §8).
//!
//! - [`PidRateEstimator`]: Spark's PID estimator, the same formula, parameters and defaults.
//! - [`TokenBucket`]: the smooth limit a receiver's `store` waits on (`receiver.max_rate`, and the
//!   backpressure estimate when `backpressure.enabled`).
//!
//! With backpressure on, the driver feeds every completed batch of each receiver's stream to that
//! stream's estimator and sets the receiver's limit to `min(estimate, receiver.max_rate)`; the
//! first batches run at `backpressure.initial_rate`. Receivers in other processes of a cluster keep
//! their static limit. Independently of all this, a source never closes more than
//! `flow.max_batches_in_flight` batches ahead of completion and a receiver's buffer is bounded, so
//! memory stays bounded even with backpressure off.

mod limiter;
mod pid;

pub(crate) use limiter::RateLimiter;
pub use limiter::TokenBucket;
pub use pid::PidRateEstimator;
