//! How fast the Redis sink writes (a measurement, not a check): run with
//! `cargo test --release -p ember-redis --test throughput -- --ignored --nocapture` against the
//! server `scripts/test.sh` starts on 127.0.0.1:6379.

use ember::testing::manual_context;
use ember_redis::{RedisMode, SaveToRedis};

#[test]
#[ignore = "a measurement: run it by hand (see the file's docs)"]
fn records_per_second_per_worker() {
    let url = "redis://127.0.0.1:6379/";
    let (batches, records) = (10usize, 100_000usize);
    for mode in [
        RedisMode::set("throughput:"),
        RedisMode::hash_increment("throughput_hash"),
        RedisMode::stream_append("throughput_stream"),
    ] {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*throughput*").query(&mut c).unwrap();
        for k in keys {
            let _: () = redis::cmd("DEL").arg(k).query(&mut c).unwrap();
        }
        let ssc = manual_context("local[1]");
        let data: Vec<Vec<(String, i64)>> =
            (0..batches).map(|_| (0..records).map(|i| (format!("k{i}"), 1)).collect()).collect();
        let name = format!("{mode:?}");
        let counters = ssc.queue_stream(data, true).save_to_redis(url, mode).unwrap();
        ssc.run_batches(batches as u64).unwrap();
        ssc.stop(false).unwrap();
        let n = counters.get();
        println!(
            "{name}: {} records in {} ms of writing: {:.0} records/s on one worker",
            n.records,
            n.write_ms,
            n.records as f64 / (n.write_ms as f64 / 1000.0)
        );
    }
}
