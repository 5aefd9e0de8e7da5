//! Streaming k-means and linear regression with a checkpoint directory, killed with SIGKILL at
//! random points of its progress and restarted: the models saved after every batch equal an
//! uninterrupted run's.

use std::path::Path;
use std::time::Duration;

use ember::StreamingContext;
use ember_ml::{LabeledPoint, StreamingKMeans, StreamingLinearRegressionWithSGD};

const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 16;

/// Files of points in Spark's text form, their modification times spread over the batches.
fn write_input(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut seed = 11u64;
    let mut r = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    for i in 0..40u64 {
        let lines: Vec<String> = (0..(5 + (r() * 30.0) as usize))
            .map(|_| {
                let (cx, cy) = [(0.0, 0.0), (5.0, 5.0), (-4.0, 6.0)][(r() * 3.0) as usize % 3];
                format!("[{},{}]", cx + r() - 0.5, cy + r() - 0.5)
            })
            .collect();
        let path = dir.join(format!("points-{i:03}.txt"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mtime = START + 1 + i * (BATCHES - 2) * 1000 / 40;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(mtime)).unwrap();
    }
}

fn build(input: &Path, out: &Path, ck: &Path, master: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    let (points, _) = ember_ml::parse_vectors(&ssc.text_file_stream(input));
    let km = StreamingKMeans::new()
        .k(3)
        .decay_factor(0.8)
        .initial_centers(vec![vec![1.0, 1.0], vec![2.0, 2.0], vec![3.0, 3.0]], vec![0.0; 3]);
    km.train_on(&points)?;
    let models = km.models().expect("trained");
    models
        .map(|m| serde_json::to_string(&m).unwrap_or_default())
        .save_as_text_files(out.join("model").display().to_string(), "");
    km.predict_on(&points)?.count_by_value().save_as_text_files(out.join("clusters").display().to_string(), "");
    // Linear regression of each point's second coordinate on its first, 20 iterations a batch.
    let lr = StreamingLinearRegressionWithSGD::new().num_iterations(20).convergence_tol(0.0).initial_weights(vec![0.0]);
    lr.train_on(&points.map(|v| {
        let d = v.to_dense();
        LabeledPoint::new(d[1], vec![d[0]])
    }))?;
    lr.models()
        .expect("trained")
        .map(|m| serde_json::to_string(&m).unwrap_or_default())
        .save_as_text_files(out.join("linear").display().to_string(), "");
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn kmeans_kill_child() {
    ember::testing::run_kill_child(START + BATCHES * 1000, build);
}

fn child(test: &str, master: &str, input: &Path, out: &Path, ck: &Path) -> std::process::Command {
    let path = |p: &Path| p.display().to_string();
    let env = [
        ("KILL_IN", path(input)),
        ("KILL_OUT", path(out)),
        ("KILL_CK", path(ck)),
        ("KILL_MASTER", master.to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let mut cmd = ember::testing::child_command(test, &env);
    cmd.stdout(std::process::Stdio::null());
    cmd
}

/// The processes of one run of child test `test`: one, or two for `cluster` (2 processes x 2
/// workers).
fn run(test: &str, master: &str, input: &Path, out: &Path, ck: &Path) -> Vec<std::process::Command> {
    if master != "cluster" {
        return vec![child(test, master, input, out, ck)];
    }
    let hosts = ember::testing::cluster_hosts();
    (0..2)
        .map(|i| {
            let mut c = child(test, "local[1]", input, out, ck);
            c.envs(ember::testing::cluster_env(&hosts, i));
            c
        })
        .collect()
}

fn killed_and_straight_agree(master: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ck_a = dir.path().join("ck-a");
    ember::testing::kill_and_restart_all(|| run("kmeans_kill_child", master, &input, &a, &ck_a), 0, || 0, 1);
    let want = ember::testing::committed_outputs(&a);
    assert_eq!(want.len() as u64, 3 * BATCHES, "two models and the cluster counts every batch");
    let ck = dir.path().join("ck-b");
    let kills = ember::testing::kill_and_restart_all(
        || run("kmeans_kill_child", master, &input, &b, &ck),
        6,
        || ember::testing::committed_output_count(&b),
        3 * BATCHES,
    );
    assert!(kills >= 3, "only {kills} kills landed");
    let got = ember::testing::committed_outputs(&b);
    for (name, lines) in &want {
        assert_eq!(got.get(name), Some(lines), "{master}: output {name} after {kills} kills");
    }
    // The model moved: training happened.
    let last = want.iter().rfind(|(n, _)| n.starts_with("model")).unwrap().1;
    assert!(!last[0].contains("[1.0,1.0]"), "{last:?}");
}

#[test]
fn the_model_survives_sigkill_local_1() {
    killed_and_straight_agree("local[1]");
}

#[test]
fn the_model_survives_sigkill_local_3() {
    killed_and_straight_agree("local[3]");
}

#[test]
fn the_model_survives_sigkill_two_processes() {
    killed_and_straight_agree("cluster");
}

/// The job of the tests above, run to batch `RESCALE_BATCHES` and stopped gracefully (its last
/// batch checkpointed), recovering first when its checkpoint is there.
#[test]
#[ignore = "run as a child process by the rescale test"]
fn kmeans_rescale_child() {
    use ember::Clock;
    let var = |k: &str| std::env::var(k).unwrap();
    let (input, out, ck) = (var("KILL_IN"), var("KILL_OUT"), var("KILL_CK"));
    let (input, out, ck) = (Path::new(&input), Path::new(&out), Path::new(&ck));
    let batches: u64 = var("RESCALE_BATCHES").parse().unwrap();
    let master = var("KILL_MASTER");
    let ssc = StreamingContext::get_or_create(ck, || build(input, out, ck, &master)).unwrap();
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap();
    while clock.now_millis() < START + batches * 1000 {
        ssc.run_batches(1).unwrap();
    }
    ssc.stop(true).unwrap();
}

/// Whether two JSON values are equal, numbers within a relative 1e-9 (sums of the workers'
/// partials add up in another order on another number of workers).
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn models_move_with_a_rescale_from_2_processes_to_3_workers_to_1() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input);
    let shape = |master: &str, out: &Path, ck: &Path, batches: u64| {
        let children: Vec<_> = run("kmeans_rescale_child", master, &input, out, ck)
            .into_iter()
            .map(|mut c| c.env("RESCALE_BATCHES", batches.to_string()).spawn().unwrap())
            .collect();
        for c in children {
            assert!(c.wait_with_output().unwrap().status.success(), "{master} to batch {batches}");
        }
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    shape("local[1]", &a, &dir.path().join("ck-a"), BATCHES);
    let ck = dir.path().join("ck-b");
    for (master, batches) in [("cluster", 5), ("local[3]", 10), ("local[1]", BATCHES)] {
        shape(master, &b, &ck, batches);
    }
    let (want, got) = (ember::testing::committed_outputs(&a), ember::testing::committed_outputs(&b));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (name, lines) in &want {
        if name.starts_with("clusters") {
            assert_eq!(&got[name], lines, "{name}");
            continue;
        }
        let parse = |ls: &[String]| {
            ls.iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
        };
        let (w, g) = (parse(lines), parse(&got[name]));
        assert!(
            w.len() == g.len() && w.iter().zip(&g).all(|(w, g)| close(w, g)),
            "{name}: {lines:?} vs {:?}",
            got[name]
        );
    }
}
