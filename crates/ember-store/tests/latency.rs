//! What a checkpoint costs on S3 against local disk (a measurement, not a check): run with
//! `cargo test --release -p ember-store --test latency -- --ignored --nocapture`. Needs moto's
//! server (`scripts/test.sh` installs it).

use std::time::Duration;

use ember::testing::Service;
use ember::{Conf, StreamingContext};

/// A job whose state holds `keys` words, checkpointed after every batch; returns the write time
/// of each checkpoint (ms) and its size (bytes).
fn checkpoint_times(conf: Conf, ck: &str, keys: u64) -> (Vec<f64>, u64) {
    let conf = conf.master("local[2]").manual_clock(true).set("checkpoint.sync", "true");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    ssc.checkpoint(ck);
    let text = ember::GeneratedText {
        lines_per_second: 20_000,
        words_per_line: 5,
        vocabulary: keys as usize,
        skew: 0.0,
        seed: 3,
    };
    ssc.generated_text_stream_with(text)
        .flat_map(|l: String| l.split(' ').map(|w| (w.to_owned(), 1u64)).collect::<Vec<_>>())
        .update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.len() as u64))
        .checkpoint(Duration::from_secs(1))
        .count()
        .foreach_batch(|_, _| {});
    ssc.start().unwrap();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        ssc.run_batches(1).unwrap();
        let c = ssc.storage_counters();
        times.push(c.last_checkpoint_write_ms);
        bytes = c.last_checkpoint_bytes;
    }
    ssc.stop(false).unwrap();
    times.sort_by(f64::total_cmp);
    (times, bytes)
}

#[test]
#[ignore = "a measurement: run it by hand (see the file's docs)"]
fn checkpoint_latency_on_s3_and_local_disk() {
    let moto = Service::moto(None);
    assert_eq!(moto.http("PUT", "/bucket"), 200);
    ember_store::register();
    let s3 = Conf::new()
        .set("fs.s3.endpoint", &moto.endpoint)
        .set("fs.s3.region", "us-east-1")
        .set("fs.s3.access_key_id", "ember-test")
        .set("fs.s3.secret_access_key", "ember-test-secret");
    for keys in [1_000u64, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let (local, size) = checkpoint_times(Conf::new(), &dir.path().display().to_string(), keys);
        let (remote, _) = checkpoint_times(s3.clone(), &format!("s3://bucket/ck-{keys}"), keys);
        let show = |t: &[f64]| format!("median {:.1} ms, max {:.1} ms", t[t.len() / 2], t[t.len() - 1]);
        println!(
            "{keys} keys, {size} bytes per checkpoint: local disk (synced) {}; S3 (moto) {}",
            show(&local),
            show(&remote)
        );
    }
}
