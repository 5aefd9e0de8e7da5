//! Streaming k-means against golden outputs of Spark 4.3's `pyspark.mllib` `StreamingKMeans`
//! (`tests/golden/spark/kmeans.json`, taken by `tests/golden/spark/kmeans_golden.py`): the same
//! initial models and batches, the model after every batch within a relative 1e-9.

mod common;

use common::close;
use ember_ml::{StreamingKMeans, TimeUnit, Vector};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    k: usize,
    decay_factor: f64,
    time_unit: String,
    /// Set through `setHalfLife(h, unit)` instead of a decay factor.
    half_life: Option<(f64, String)>,
    centers: Vec<Vec<f64>>,
    weights: Vec<f64>,
    batches: Vec<Vec<Vec<f64>>>,
    after_each_batch: Vec<Model>,
}

#[derive(Deserialize, Debug)]
struct Model {
    centers: Vec<Vec<f64>>,
    weights: Vec<f64>,
}

fn golden() -> Golden {
    serde_json::from_str(&common::golden_text("kmeans.json")).unwrap()
}

/// The case's `StreamingKMeans`, configured as the golden script configured Spark's.
fn configured(case: &Case) -> StreamingKMeans {
    let unit = if case.time_unit == "points" { TimeUnit::Points } else { TimeUnit::Batches };
    match &case.half_life {
        Some((h, _)) => StreamingKMeans::new().k(case.k).half_life(*h, unit),
        None => StreamingKMeans::new().k(case.k).decay_factor(case.decay_factor).time_unit(unit),
    }
    .initial_centers(case.centers.clone(), case.weights.clone())
}

/// Runs `case` under `master` and compares the model after every batch with Spark's.
fn replay(case: &Case, master: &str) {
    let ssc = ember::testing::manual_context(master);
    let batches: Vec<Vec<Vector>> =
        case.batches.iter().map(|b| b.iter().map(|p| Vector::dense(p.clone())).collect()).collect();
    let points = ssc.queue_stream(batches, true);
    let km = configured(case);
    km.train_on(&points).unwrap();
    for (i, want) in case.after_each_batch.iter().enumerate() {
        ssc.run_batches(1).unwrap();
        let got = km.latest_model().unwrap();
        let ok = got.weights.len() == want.weights.len()
            && got.weights.iter().zip(&want.weights).all(|(a, b)| close(*a, *b))
            && got.centers.iter().flatten().zip(want.centers.iter().flatten()).all(|(a, b)| close(*a, *b));
        assert!(ok, "{} under {master}, after batch {i}: Ember {got:?}, Spark {want:?}", case.name);
    }
    ssc.stop(false).unwrap();
}

#[test]
fn every_batch_matches_spark_under_local_1_and_3() {
    let g = golden();
    assert_eq!(g.cases.len(), 5);
    for case in &g.cases {
        for master in ["local[1]", "local[3]"] {
            replay(case, master);
        }
    }
}

fn one_d(ssc: &ember::StreamingContext, batches: Vec<Vec<f64>>) -> ember::DStream<Vector> {
    let batches: Vec<Vec<Vector>> =
        batches.into_iter().map(|b| b.into_iter().map(|x| Vector::dense([x])).collect()).collect();
    ssc.queue_stream(batches, true)
}

#[test]
fn prediction_in_a_batch_uses_the_model_trained_on_it_as_in_spark() {
    // Spark runs outputs in declaration order: with trainOn declared first, predictOn in batch t
    // sees the model updated with batch t.
    let ssc = ember::testing::manual_context("local[3]");
    let train = one_d(&ssc, vec![vec![4.0; 4]]);
    let score = one_d(&ssc, vec![vec![6.0]]);
    let km = StreamingKMeans::new().initial_centers(vec![vec![0.0], vec![10.0]], vec![1.0, 1.0]);
    km.train_on(&train).unwrap();
    let predicted = km.predict_on(&score).unwrap().collect_batches();
    // Scoring without training uses the initial model: 6.0 is nearer to 10 than to 0.
    let fixed = StreamingKMeans::new().initial_centers(vec![vec![0.0], vec![10.0]], vec![1.0, 1.0]);
    let initial = fixed.predict_on(&score).unwrap().collect_batches();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    // After batch 1, center 0 moved to (0·1 + 4·4)/5 = 3.2, nearer to 6.0 than 10.
    assert_eq!(predicted.batches()[0].1, vec![0]);
    assert_eq!(initial.batches()[0].1, vec![1]);
    assert_eq!(km.latest_model().unwrap().centers, vec![vec![3.2], vec![10.0]]);
}

#[test]
fn bad_points_are_skipped_and_counted_and_change_nothing() {
    let run = |bad: bool| {
        let ssc = ember::testing::manual_context("local[2]");
        let mut batch = vec![Vector::dense([1.0, 1.0]), Vector::dense([9.0, 8.0])];
        if bad {
            batch.push(Vector::dense([1.0]));
            batch.push(Vector::dense([f64::NAN, 1.0]));
            batch.push(Vector::dense([1.0, f64::INFINITY]));
        }
        let points = ssc.queue_stream(vec![batch.clone(), vec![], batch], true);
        let km = StreamingKMeans::new()
            .decay_factor(0.5)
            .initial_centers(vec![vec![0.0, 0.0], vec![10.0, 10.0]], vec![2.0, 2.0]);
        km.train_on(&points).unwrap();
        let predicted = km.predict_on(&points).unwrap().collect_batches();
        ssc.run_batches(3).unwrap();
        ssc.stop(false).unwrap();
        let counts: Vec<usize> = predicted.batches().iter().map(|(_, b)| b.len()).collect();
        (km.latest_model().unwrap(), km.skipped(), counts)
    };
    let (clean, none, clean_counts) = run(false);
    let (dirty, skipped, dirty_counts) = run(true);
    assert_eq!(none, 0);
    // Three bad points in two batches, each skipped in training and in prediction.
    assert_eq!(skipped, 3 * 2 * 2);
    assert_eq!(clean, dirty);
    assert_eq!(clean_counts, vec![2, 0, 2]);
    assert_eq!(dirty_counts, clean_counts);
    // The empty batch still decayed the weights (Spark's rule): 2·0.5 + 1 = 2, then 1, then 1.5.
    assert_eq!(clean.weights, vec![1.5, 1.5]);
}

#[test]
fn a_stream_without_points_only_decays() {
    let ssc = ember::testing::manual_context("local[1]");
    let points = one_d(&ssc, vec![vec![], vec![]]);
    let km = StreamingKMeans::new().decay_factor(0.5).initial_centers(vec![vec![1.0], vec![2.0]], vec![4.0, 8.0]);
    km.train_on(&points).unwrap();
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    let m = km.latest_model().unwrap();
    assert_eq!((m.centers, m.weights), (vec![vec![1.0], vec![2.0]], vec![1.0, 2.0]));
}

#[test]
fn configuration_mistakes_are_errors_before_start() {
    let ssc = ember::testing::manual_context("local[1]");
    let points = one_d(&ssc, vec![]);
    let e = StreamingKMeans::new().train_on(&points).unwrap_err();
    assert!(e.to_string().contains("initial cluster centers must be set"), "{e}");
    let e = StreamingKMeans::new().k(3).initial_centers(vec![vec![1.0]; 2], vec![1.0; 2]).k(3).train_on(&points);
    assert!(e.unwrap_err().to_string().contains("k is 3 but there are 2 initial centers"));
    let e = StreamingKMeans::new().decay_factor(-1.0).initial_centers(vec![vec![1.0]], vec![1.0]).predict_on(&points);
    assert!(e.unwrap_err().to_string().contains("decay factor must be 0 or more"));
}

/// Every case at once, in one job on `conf`: the models of every case after each batch, as
/// `case batch json` lines.
fn replay_all(conf: ember::Conf) -> Vec<String> {
    let g = golden();
    let ssc = ember::StreamingContext::new(conf.manual_clock(true), std::time::Duration::from_secs(1)).unwrap();
    let rounds = g.cases.iter().map(|c| c.batches.len()).max().unwrap();
    let models: Vec<StreamingKMeans> = g
        .cases
        .iter()
        .map(|case| {
            let batches: Vec<Vec<Vector>> =
                case.batches.iter().map(|b| b.iter().map(|p| Vector::dense(p.clone())).collect()).collect();
            let km = configured(case);
            km.train_on(&ssc.queue_stream(batches, true)).unwrap();
            km
        })
        .collect();
    let mut lines = Vec::new();
    for batch in 0..rounds {
        ssc.run_batches(1).unwrap();
        for (case, km) in g.cases.iter().zip(&models) {
            let m = km.latest_model().unwrap();
            lines.push(format!("{} {batch} {}", case.name, serde_json::to_string(&(m.centers, m.weights)).unwrap()));
        }
    }
    ssc.stop(false).unwrap();
    lines
}

/// Whether the model lines of a run match Spark's after every batch of every case.
fn check_lines(lines: &[String], how: &str) {
    let g = golden();
    for case in &g.cases {
        for (i, want) in case.after_each_batch.iter().enumerate() {
            let prefix = format!("{} {i} ", case.name);
            let line =
                lines.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{how}: no model for {prefix}"));
            let (centers, weights): (Vec<Vec<f64>>, Vec<f64>) = serde_json::from_str(&line[prefix.len()..]).unwrap();
            let ok = weights.len() == want.weights.len()
                && weights.iter().zip(&want.weights).all(|(a, b)| close(*a, *b))
                && centers.iter().flatten().zip(want.centers.iter().flatten()).all(|(a, b)| close(*a, *b));
            assert!(ok, "{how}: {} after batch {i}: Ember {centers:?} {weights:?}, Spark {want:?}", case.name);
        }
    }
}

#[test]
#[ignore = "run as a child process by `every_batch_matches_spark_on_two_processes`"]
fn kmeans_cluster_child() {
    for l in replay_all(ember::Conf::new()) {
        println!("KM {l}");
    }
}

#[test]
fn every_batch_matches_spark_on_two_processes() {
    // Every process holds the model.
    for (p, lines) in common::cluster_lines("kmeans_cluster_child", "KM").iter().enumerate() {
        check_lines(lines, &format!("2 processes x 2 workers, process {p}"));
    }
}

#[test]
fn all_cases_in_one_job_match_spark() {
    check_lines(&replay_all(ember::Conf::new().master("local[2]")), "one job, local[2]");
}

#[test]
fn prediction_declared_before_training_uses_the_initial_model() {
    // Ember's departure, documented: declare train_on first to predict with the trained model.
    let ssc = ember::testing::manual_context("local[2]");
    let train = one_d(&ssc, vec![vec![4.0; 4]]);
    let score = one_d(&ssc, vec![vec![6.0]]);
    let km = StreamingKMeans::new().initial_centers(vec![vec![0.0], vec![10.0]], vec![1.0, 1.0]);
    let predicted = km.predict_on(&score).unwrap().collect_batches();
    km.train_on(&train).unwrap();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(predicted.batches()[0].1, vec![1]);
    assert_eq!(km.latest_model().unwrap().centers, vec![vec![3.2], vec![10.0]]);
}
