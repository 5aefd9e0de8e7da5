//! The PostgreSQL sink against real PostgreSQL servers: the one `scripts/test.sh` starts on
//! 127.0.0.1:5432, and private ones started per test (stopped and started again for the restart
//! test). Every test uses tables of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ember::testing::manual_context;
use ember::{StreamingContext, Time};
use ember_postgres::{Mode, PostgresSink, SaveToPostgres};
use postgres::{Client, NoTls};

const SHARED: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 30;

fn connect(conn: &str) -> Client {
    Client::connect(conn, NoTls).unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at `{conn}`: {e}; run `scripts/test.sh`, which starts it on 127.0.0.1:5432")
    })
}

/// Creates the tables `tables` (name, columns) anew in the shared server, with a prefix of this
/// test's own, and forgets the batches its sinks (named after the test) wrote; returns the tables'
/// names.
fn fresh(conn: &str, test: &str, tables: &[(&str, &str)]) -> Vec<String> {
    let mut db = connect(conn);
    let markers = ember_postgres::MARKERS;
    db.batch_execute(&format!(
        "DO $$ BEGIN IF to_regclass('{markers}') IS NOT NULL THEN DELETE FROM {markers} WHERE sink LIKE '{test}%'; END IF; END $$"
    ))
    .unwrap();
    tables
        .iter()
        .map(|(name, columns)| {
            let name = format!("{test}_{name}");
            db.batch_execute(&format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns})")).unwrap();
            name
        })
        .collect()
}

fn rows(conn: &str, query: &str) -> Vec<(String, i64)> {
    connect(conn).query(query, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Collects what sinks report to listeners.
#[derive(Clone, Default)]
struct Sinks(std::sync::Arc<std::sync::Mutex<Vec<ember::SinkCommitInfo>>>);

impl ember::StreamingListener for Sinks {
    fn on_sink_committed(&mut self, info: &ember::SinkCommitInfo) {
        self.0.lock().unwrap().push(info.clone());
    }
}

#[test]
fn upserts_and_transactions_write_every_row_and_a_rerun_writes_nothing_twice() {
    let t = fresh(
        SHARED,
        "basic",
        &[("totals", "word text PRIMARY KEY, n bigint NOT NULL"), ("counts", "word text NOT NULL, n bigint NOT NULL")],
    );
    let job = || {
        let ssc = manual_context("local[2]");
        let batches = vec![vec!["a", "b", "a"], vec!["b", "c"], vec![], vec!["a"]];
        let words = ssc.queue_stream(
            batches.into_iter().map(|b| b.into_iter().map(String::from).collect::<Vec<_>>()).collect::<Vec<_>>(),
            true,
        );
        let counts = words.map(|w: String| (w, 1i64)).reduce_by_key(|a, b| a + b);
        let totals = counts
            .update_state_by_key(|new: Vec<i64>, old: Option<i64>| Some(old.unwrap_or(0) + new.iter().sum::<i64>()));
        let upserts = totals.save_to_postgres(SHARED, &t[0], Mode::upsert(&["word"]));
        let transactions = counts.save_to_postgres(SHARED, &t[1], Mode::transactional("basic_counts"));
        (ssc, upserts, transactions)
    };
    let (ssc, upserts, transactions) = job();
    let reported = Sinks::default();
    ssc.add_streaming_listener(reported.clone());
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    // Listeners get each sink's figures per batch.
    let reported = reported.0.lock().unwrap().clone();
    let sum =
        |name: &str, key: &str| -> u64 { reported.iter().filter(|i| i.name == name).map(|i| i.metrics[key]).sum() };
    assert_eq!(reported.len(), 8, "two sinks, four batches: {reported:?}");
    assert_eq!(sum("save_to_postgres", "records"), 16, "{reported:?}");
    let totals = rows(SHARED, &format!("SELECT word, n FROM {} ORDER BY word", t[0]));
    assert_eq!(totals, vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]);
    let counts = rows(SHARED, &format!("SELECT word, sum(n)::bigint FROM {} GROUP BY word ORDER BY word", t[1]));
    assert_eq!(counts, totals, "each batch's counts once");
    let (u, tr) = (upserts.get(), transactions.get());
    // The state emits every key every batch: 2 + 3 + 3 + 3 rows.
    assert_eq!((u.records, tr.records, tr.skipped), (11, 5, 0), "{u:?} {tr:?}");
    // The same batches again (a re-run): upserts leave the same table, transactions are skipped.
    let (ssc, _, transactions) = job();
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(rows(SHARED, &format!("SELECT word, n FROM {} ORDER BY word", t[0])), totals);
    let again = rows(SHARED, &format!("SELECT word, sum(n)::bigint FROM {} GROUP BY word ORDER BY word", t[1]));
    assert_eq!(again, totals, "a re-run batch is recognised and skipped");
    let tr = transactions.get();
    assert_eq!((tr.records, tr.shares), (0, 0), "{tr:?}");
    assert!(tr.skipped >= 3, "{tr:?}");
}

#[test]
fn a_row_that_breaks_a_constraint_or_does_not_fit_is_a_clear_error() {
    let t = fresh(SHARED, "bad", &[("checked", "word text NOT NULL, n bigint NOT NULL CHECK (n < 2)")]);
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![("a".to_string(), 1i64)], vec![("b".to_string(), 5i64)]], true).save_to_postgres(
        SHARED,
        &t[0],
        Mode::transactional("bad"),
    );
    ssc.run_batches(1).unwrap();
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(
        e.contains("a row violates a constraint of PostgreSQL table `bad_checked`") && e.contains("batch 2000"),
        "{e}"
    );
    let _ = ssc.stop(false);
    assert_eq!(
        rows(SHARED, &format!("SELECT word, n FROM {}", t[0])),
        vec![("a".into(), 1)],
        "the failed share wrote nothing"
    );

    // A record whose value does not convert to its column names the record and the column.
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![("c".to_string(), "many".to_string())]], true).save_to_postgres(
        SHARED,
        &t[0],
        Mode::transactional("bad"),
    );
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains("does not fit PostgreSQL table `bad_checked`") && e.contains("column `n`"), "{e}");
    let _ = ssc.stop(false);

    // A table that does not exist.
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![1i64]], true).save_to_postgres(SHARED, "bad_missing_table", Mode::transactional("bad"));
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains("bad_missing_table") && e.contains("does not exist"), "{e}");
    let _ = ssc.stop(false);
}

/// A private PostgreSQL server in a temporary directory, on a free port of loopback.
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).max())
            .expect("PostgreSQL's binaries in /usr/lib/postgresql/*/bin: run `scripts/test.sh`, which installs them");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = Server { dir, bin, port };
        s.as_postgres(Command::new("chown").args(["-R", "postgres:postgres"]).arg(s.dir.path()), false);
        let data = s.data();
        s.as_postgres(
            Command::new(s.bin.join("initdb")).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ]),
            true,
        );
        s.ctl("start");
        s
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn conn(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    /// Runs `cmd` (as the `postgres` user when this is root: PostgreSQL refuses root).
    fn as_postgres(&self, cmd: &mut Command, switch: bool) {
        let root =
            std::env::var("USER").map(|u| u == "root").unwrap_or(true) && Path::new("/usr/sbin/runuser").exists();
        let status = if switch && root {
            let mut args = vec![cmd.get_program().to_owned()];
            args.extend(cmd.get_args().map(|a| a.to_owned()));
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        } else {
            cmd.stdout(std::process::Stdio::null()).status()
        };
        assert!(status.unwrap().success(), "{cmd:?} failed");
    }

    fn ctl(&self, what: &str) {
        let opts =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("server.log");
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.data()).arg("-l").arg(&log).args(["-w", "-m", "fast", "-o", &opts, what]);
        self.as_postgres(&mut cmd, true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn a_database_restarted_mid_run_is_retried_and_nothing_is_lost() {
    let server = Server::start();
    let conn = server.conn();
    let t = fresh(&conn, "restart", &[("counts", "word text NOT NULL, n bigint NOT NULL")]);
    let ssc = manual_context("local[2]");
    let batches: Vec<Vec<(String, i64)>> = (0..6).map(|i| vec![(format!("w{i}"), 1), (format!("v{i}"), 2)]).collect();
    let sink = PostgresSink::new(&conn, &t[0], Mode::transactional("restart")).retry_timeout(Duration::from_secs(120));
    let counters = ssc.queue_stream(batches, true).save_to_postgres_with(sink);
    ssc.run_batches(3).unwrap();
    server.ctl("stop");
    let done = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = ssc.run_batches(3).map(|_| ()).and_then(|_| ssc.stop(false).map(|_| ()));
        let _ = done.0.send(r);
    });
    // The writes of batch 4 fail and are retried while the server is down ...
    let watch = ember::clock::Stopwatch::start();
    while counters.get().retries == 0 {
        assert!(watch.elapsed() < Duration::from_secs(60), "no retry while the database was down");
        ember::clock::real_sleep(Duration::from_millis(20));
    }
    // ... and succeed once it is back.
    server.ctl("start");
    done.1.recv_timeout(Duration::from_secs(120)).expect("the batches finished").unwrap();
    let sum = rows(&conn, &format!("SELECT 'all', sum(n)::bigint FROM {}", t[0]));
    assert_eq!(sum, vec![("all".into(), 18)], "every row of the six batches, once");
    assert!(counters.get().retries >= 1);
}

#[test]
fn an_unreachable_database_fails_the_batch_after_the_retry_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conn = format!("host=127.0.0.1 port={closed} user=postgres connect_timeout=2");
    let ssc = manual_context("local[1]");
    let sink = PostgresSink::new(&conn, "nowhere", Mode::transactional("x")).retry_timeout(Duration::from_secs(1));
    ssc.queue_stream(vec![vec![1i64]], true).save_to_postgres_with(sink);
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains("batch 1000") && e.contains("`nowhere`"), "{e}");
    let _ = ssc.stop(false);
}

/// The job of the SIGKILL test: generated words counted per batch (exactly once, with the batch
/// time) and into running totals (upserted).
fn build(master: &str, ck: &Path, table: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    let counts = ember::testing::generated_word_counts(&ssc);
    counts
        .map_partitions_with_time(|t: Time, part: Vec<(String, i64)>| {
            part.into_iter().map(|(w, n)| (t.millis() as i64, w, n)).collect::<Vec<_>>()
        })
        .save_to_postgres(SHARED, &format!("{table}_counts"), Mode::transactional(table));
    counts
        .update_state_by_key(|new: Vec<i64>, old: Option<i64>| Some(old.unwrap_or(0) + new.iter().sum::<i64>()))
        .save_to_postgres(SHARED, &format!("{table}_totals"), Mode::upsert(&["word"]));
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn postgres_kill_child() {
    // The tables are named after KILL_OUT.
    ember::testing::run_kill_child(START + BATCHES * 1000, |_, table, ck, master| {
        build(master, ck, &table.display().to_string())
    });
}

fn killed_job_counts_every_word_once(master: &str, table: &str) {
    fresh(
        SHARED,
        table,
        &[
            ("counts", "batch bigint NOT NULL, word text NOT NULL, n bigint NOT NULL"),
            ("totals", "word text PRIMARY KEY, n bigint NOT NULL"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KILL_CK", dir.path().join("ck").display().to_string()),
        ("KILL_MASTER", master.to_owned()),
        ("KILL_IN", String::new()),
        ("KILL_OUT", table.to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let mut db = connect(SHARED);
    let batches = format!("SELECT count(DISTINCT batch) FROM {table}_counts");
    let kills = ember::testing::kill_and_restart(
        || {
            let mut c = ember::testing::child_command("postgres_kill_child", &env);
            c.stdout(std::process::Stdio::null());
            c
        },
        20,
        || db.query_one(&batches, &[]).map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0),
        BATCHES,
    );
    assert!(kills >= 14, "only {kills} kills landed");
    // Each batch's counts once: per batch and word one row, the batches' words all there.
    let dup = rows(
        SHARED,
        &format!("SELECT word || '@' || batch, count(*) FROM {table}_counts GROUP BY 1 HAVING count(*) > 1"),
    );
    assert!(dup.is_empty(), "rows written twice: {dup:?}");
    let total = rows(SHARED, &format!("SELECT 'all', sum(n)::bigint FROM {table}_counts"));
    assert_eq!(
        total,
        vec![("all".into(), (ember::testing::GENERATED_WORDS_PER_BATCH * BATCHES) as i64)],
        "{master}: every word once after {kills} kills"
    );
    let by_word = rows(SHARED, &format!("SELECT word, sum(n)::bigint FROM {table}_counts GROUP BY word ORDER BY word"));
    let totals = rows(SHARED, &format!("SELECT word, n FROM {table}_totals ORDER BY word"));
    assert_eq!(totals, by_word, "{master}: the upserted running totals agree with the counts");
}

#[test]
fn a_job_killed_20_times_counts_every_word_once_local_1() {
    killed_job_counts_every_word_once("local[1]", "kill1");
}

#[test]
fn a_job_killed_20_times_counts_every_word_once_local_3() {
    killed_job_counts_every_word_once("local[3]", "kill3");
}

#[test]
fn the_postgres_word_count_example_writes_each_batch_once_across_a_restart() {
    let mut db = connect(SHARED);
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS word_counts; DROP TABLE IF EXISTS word_totals; \
         DO $$ BEGIN IF to_regclass('{0}') IS NOT NULL THEN DELETE FROM {0} WHERE sink = 'postgres_word_count'; END IF; END $$",
        ember_postgres::MARKERS
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (i, text) in ["to be or not to be", "be quick", "to go"].iter().enumerate() {
        let path = input.join(format!("{i}.txt"));
        std::fs::write(&path, text).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(START + 500 + i as u64 * 1000)).unwrap();
    }
    let ck = dir.path().join("ck");
    let run = |batches: u64| {
        let status = Command::new(ember::testing::example_binary("postgres_word_count"))
            .arg(&input)
            .arg(SHARED)
            .arg(&ck)
            .args(["--manual-clock", &START.to_string(), "--batches", &batches.to_string()])
            .env("RUST_LOG", "error")
            .status()
            .unwrap();
        assert!(status.success(), "postgres_word_count failed: {status}");
    };
    run(2);
    run(5); // recovers and goes on
    let counts = rows(SHARED, "SELECT word, sum(n)::bigint FROM word_counts GROUP BY word ORDER BY word");
    let totals = rows(SHARED, "SELECT word, n FROM word_totals ORDER BY word");
    let want: Vec<(String, i64)> = [("be", 3), ("go", 1), ("not", 1), ("or", 1), ("quick", 1), ("to", 3)]
        .iter()
        .map(|(w, n)| (w.to_string(), *n))
        .collect();
    assert_eq!(counts, want, "each batch's counts once");
    assert_eq!(totals, want, "the running totals");
}
