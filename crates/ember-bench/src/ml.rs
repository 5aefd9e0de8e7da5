//! `ember-bench kmeans` and `ember-bench sgd`: streaming k-means and linear-regression training
//! throughput (points per second per worker), on batches of random points around 10 centers,
//! batches back to back on the manual clock. `crates/ember-bench/spark/SparkMl.java` runs the same
//! on Spark's `StreamingKMeans` and `StreamingLinearRegressionWithSGD` (the Java API).

use std::time::Duration;

use anyhow::Context;
use ember::clock::Stopwatch;
use ember::prelude::*;
use ember_ml::{LabeledPoint, StreamingKMeans, StreamingLinearRegressionWithSGD, Vector};

/// The points of one batch: `n` points of dimension `dim` around `k` centers, seeded.
pub fn points(n: usize, dim: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let c = (uniform() * k as f64) as usize;
            (0..dim).map(|d| ((c * 7 + d) % 10) as f64 + uniform() - 0.5).collect()
        })
        .collect()
}

/// Points per second per worker of Ember's training: `batches` batches of `n` points, after one
/// warm-up batch.
pub fn ember(workers: u64, n: usize, dim: usize, k: usize, batches: usize) -> anyhow::Result<f64> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let data: Vec<Vec<Vector>> =
        (0..=batches).map(|b| points(n, dim, k, b as u64 + 1).into_iter().map(Vector::Dense).collect()).collect();
    let km = StreamingKMeans::new().k(k).decay_factor(0.9).random_centers(dim, 0.0, 42);
    km.train_on(&ssc.queue_stream(data, true))?;
    ssc.run_batches(1)?;
    let watch = Stopwatch::start();
    ssc.run_batches(batches as u64)?;
    let secs = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    let model = km.latest_model().context("a model")?;
    std::hint::black_box(model);
    Ok((n * batches) as f64 / secs / workers as f64)
}

/// Points per second per worker of Ember's linear regression by SGD: `iterations` iterations per
/// batch (no early stop), `batches` batches of `n` labeled points after a warm-up batch.
pub fn ember_sgd(workers: u64, n: usize, dim: usize, iterations: u32, batches: usize) -> anyhow::Result<f64> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let data: Vec<Vec<LabeledPoint>> = (0..=batches)
        .map(|b| {
            points(n, dim, 10, b as u64 + 1)
                .into_iter()
                .map(|x| LabeledPoint::new(x.iter().enumerate().map(|(i, v)| v * (i % 3) as f64).sum(), x))
                .collect()
        })
        .collect();
    let lr = StreamingLinearRegressionWithSGD::new()
        .num_iterations(iterations)
        .convergence_tol(0.0)
        .step_size(0.01)
        .initial_weights(vec![0.0; dim]);
    lr.train_on(&ssc.queue_stream(data, true))?;
    ssc.run_batches(1)?;
    let watch = Stopwatch::start();
    ssc.run_batches(batches as u64)?;
    let secs = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    std::hint::black_box(lr.latest_model());
    Ok((n * batches) as f64 / secs / workers as f64)
}

/// `ember-bench kmeans [--workers W] [--dim D] [--k K] [--points-per-batch N] [--batches B]`, or
/// with `sgd` as `mode`, `ember-bench sgd [--workers W] [--dim D] [--iterations I] [--points-per-batch N] [--batches B]`.
pub fn main(mode: &str, args: &[String]) -> anyhow::Result<()> {
    let get = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(Ok(default), |v| v.parse())?)
    };
    let (workers, dim, k) = (get("--workers", 2)?, get("--dim", 10)? as usize, get("--k", 10)? as usize);
    let (n, batches) = (get("--points-per-batch", 200_000)? as usize, get("--batches", 5)? as usize);
    if mode == "sgd" {
        let iterations = get("--iterations", 10)? as u32;
        let rate = ember_sgd(workers, n, dim, iterations, batches)?;
        println!("ember StreamingLinearRegressionWithSGD local[{workers}], iterations {iterations}, dim {dim}, {n} points per batch: {rate:.0} points/s per worker");
        return Ok(());
    }
    let rate = ember(workers, n, dim, k, batches)?;
    println!(
        "ember StreamingKMeans local[{workers}], k {k}, dim {dim}, {n} points per batch: {rate:.0} points/s per worker"
    );
    Ok(())
}
