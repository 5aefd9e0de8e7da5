//! How fast the PostgreSQL sink writes (a measurement, not a check): run with
//! `cargo test --release -p ember-postgres --test throughput -- --ignored --nocapture` against the
//! server `scripts/test.sh` starts on 127.0.0.1:5432.

use ember::testing::manual_context;
use ember_postgres::{Mode, SaveToPostgres};

const DB: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

#[test]
#[ignore = "a measurement: run it by hand (see the file's docs)"]
fn rows_per_second_per_worker() {
    let mut db = postgres::Client::connect(DB, postgres::NoTls).unwrap();
    let (batches, rows) = (10usize, 100_000usize);
    for (name, mode) in [("transactional", Mode::transactional("throughput")), ("upsert", Mode::upsert(&["word"]))] {
        db.batch_execute(&format!(
            "DROP TABLE IF EXISTS throughput_{name}; CREATE TABLE throughput_{name} (word text PRIMARY KEY, n bigint NOT NULL); \
             DO $$ BEGIN IF to_regclass('ember_sink_batches') IS NOT NULL THEN DELETE FROM ember_sink_batches WHERE sink = 'throughput'; END IF; END $$"
        ))
        .unwrap();
        let ssc = manual_context("local[1]");
        // Upserts need distinct keys per batch; the transactional table's key must not repeat.
        let data: Vec<Vec<(String, i64)>> =
            (0..batches).map(|b| (0..rows).map(|i| (format!("w{b}-{i}"), i as i64)).collect()).collect();
        let counters = ssc.queue_stream(data, true).save_to_postgres(DB, &format!("throughput_{name}"), mode);
        ssc.run_batches(batches as u64).unwrap();
        ssc.stop(false).unwrap();
        let c = counters.get();
        println!(
            "{name}: {} rows in {} ms of writing: {:.0} rows/s on one worker",
            c.records,
            c.write_ms,
            c.records as f64 / (c.write_ms as f64 / 1000.0)
        );
    }
}
