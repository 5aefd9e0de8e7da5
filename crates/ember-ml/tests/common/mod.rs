//! What the golden tests share: the tolerance, the golden files, and a job on 2 processes.
#![allow(dead_code)]

/// Equal within a relative 1e-9 (summation order differs from Spark's).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The golden file `name` taken from Spark.
pub fn golden_text(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/golden/spark/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs the child test `child` as 2 processes x 2 workers and returns, per process, the lines it
/// printed after `tag` and a space.
pub fn cluster_lines(child: &str, tag: &str) -> Vec<Vec<String>> {
    ember::testing::run_cluster(child, &[]).iter().map(|out| ember::testing::tagged(&out.stdout, tag)).collect()
}
