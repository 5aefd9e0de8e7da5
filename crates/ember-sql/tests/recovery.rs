//! A SQL job checkpointed, killed with SIGKILL and recovered writes what an uninterrupted run
//! writes: a windowed GROUP BY whose rows feed `update_state_by_key` for running totals, saved
//! as text files and as Parquet files, and Spark's per-batch pattern appending every batch with
//! `df.write()`, under `local[1]`, `local[3]` and 2 processes x 2 workers.

use std::path::Path;
use std::time::Duration;

use ember::prelude::*;
use ember_sql::{sql, Row, SaveMode, ToRows};

const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 16;

fn job(_input: &Path, out: &Path, ck: &Path, master: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    let text = ember::GeneratedText { lines_per_second: 2000, words_per_line: 3, vocabulary: 20, skew: 1.0, seed: 5 };
    let words = ssc.generated_text_stream_with(text).flat_map(|l: String| l.split_owned(' '));
    // Spark's per-batch pattern in the same job: the session is made again after a recovery.
    let pattern = out.join("pattern");
    std::fs::create_dir_all(&pattern).map_err(|e| ember::Error::io("creating the pattern output", e))?;
    let appended = out.join("appended").display().to_string();
    words.to_rows(["word"]).foreach_rdd_df(move |df, t| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        df.create_or_replace_temp_view("words")?;
        let rows = df.session().sql("SELECT COUNT(*) AS n, COUNT(DISTINCT word) AS words FROM words")?.collect()?;
        std::fs::write(pattern.join(t.millis().to_string()), rows[0].to_string())?;
        // Spark's `df.write.mode("append")`, each batch's file named by the batch.
        let counts = df.session().sql("SELECT word, COUNT(*) AS n FROM words GROUP BY word")?;
        counts.write().mode(SaveMode::Append).for_batch(t).parquet(&appended)?;
        Ok(())
    });
    let per_window = sql(&ssc, "SELECT word, COUNT(*) AS n, MAX(LENGTH(word)) AS len FROM words GROUP BY word")
        .with_view("words", words.window(Duration::from_secs(2), Duration::from_secs(1)).to_rows(["word"]));
    let rows = per_window.table();
    rows.save_as_parquet_files(out.join("pq").join("windows").display().to_string());
    let totals = sql(&ssc, "SELECT word, n FROM counted WHERE len > 0")
        .with_view("counted", rows)
        .stream()
        .map(|r: Row| (r.get_str("word").unwrap_or_default().to_string(), r.get_i64("n").unwrap_or_default()))
        .update_state_by_key(|ns: Vec<i64>, total: Option<i64>| Some(total.unwrap_or(0) + ns.iter().sum::<i64>()));
    totals.save_as_text_files(out.join("text").join("totals").display().to_string(), "txt");
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn sql_kill_child() {
    ember::testing::run_kill_child(START + BATCHES * 1000, job);
}

/// The Parquet outputs' rows, by directory, sorted.
fn parquet_rows(dir: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("windows-") || name.contains("_temporary") || !p.join("_SUCCESS").exists() {
            continue;
        }
        out.insert(name, sorted_rows(&session, &p));
    }
    out
}

/// The rows of the Parquet files in `dir`, as text, sorted.
fn sorted_rows(session: &std::sync::Arc<ember_sql::SqlSession>, dir: &Path) -> Vec<String> {
    let df = session.read_parquet(&dir.display().to_string()).unwrap();
    let mut rows: Vec<String> = df.collect().unwrap().iter().map(|r| r.to_string()).collect();
    rows.sort();
    rows
}

/// The part files of the appended directory and its rows, sorted.
fn appended_rows(dir: &Path) -> (usize, Vec<String>) {
    let dir = dir.join("appended");
    let parts = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet"))
        .count();
    (parts, sorted_rows(&std::sync::Arc::new(ember_sql::SqlSession::new()), &dir))
}

fn sql_job_survives_sigkills(master: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, ck: &Path| ember::testing::kill_run_commands("sql_kill_child", out, ck, master);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ember::testing::run_all(run(&a, &dir.path().join("ck-a")), &format!("{master}: the uninterrupted run"));
    let straight = ember::testing::committed_outputs(&a.join("text"));
    let totals: Vec<_> = straight.keys().filter(|k| k.starts_with("totals-")).collect();
    assert_eq!(totals.len(), BATCHES as usize, "{master}: one output per batch");
    // Every word of the run counted once in each of the two windows it falls in, except the last
    // batch's, counted once so far: the totals are twice the words less the last batch's.
    let last: u64 = ember::testing::parse_counts::<u64>(&straight[totals[totals.len() - 1].as_str()]).values().sum();
    assert_eq!(last, 2 * BATCHES * 6000 - 6000, "{master}: the windowed counts feed the running totals");
    let pattern = |d: &Path| -> std::collections::BTreeMap<String, String> {
        std::fs::read_dir(d.join("pattern"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap())
            })
            .collect()
    };
    let per_batch = pattern(&a);
    assert_eq!(per_batch.len(), BATCHES as usize, "{master}: the per-batch pattern ran every batch");
    assert!(per_batch.values().all(|v| v == "[6000,20]"), "{master}: {per_batch:?}");
    let appended = appended_rows(&a);
    assert_eq!(appended.0, BATCHES as usize, "{master}: one appended file per batch");
    assert_eq!(appended.1.len(), 20 * BATCHES as usize, "{master}: 20 words a batch");
    let windows = parquet_rows(&a.join("pq"));
    assert_eq!(windows.len(), BATCHES as usize, "{master}: one Parquet directory per batch");
    assert!(windows.values().all(|rows| rows.len() == 20), "{master}: 20 words in every window");
    let kills = ember::testing::kill_and_restart_all(
        || run(&b, &dir.path().join("ck-b")),
        10,
        // Counted from the names alone: a batch re-run after a kill replaces its directory while
        // this reads.
        || {
            std::fs::read_dir(b.join("text")).map_or(0, |d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name().to_string_lossy().starts_with("totals-")
                            && !e.file_name().to_string_lossy().contains("._")
                    })
                    .count() as u64
            })
        },
        BATCHES,
    );
    assert!(kills >= 6, "{master}: only {kills} kills landed");
    assert_eq!(
        ember::testing::committed_outputs(&b.join("text")),
        straight,
        "{master}: the same text outputs after {kills} kills"
    );
    assert_eq!(pattern(&b), per_batch, "{master}: the per-batch pattern after {kills} kills");
    assert_eq!(appended_rows(&b), appended, "{master}: each batch appended once after {kills} kills");
    assert_eq!(parquet_rows(&b.join("pq")), windows, "{master}: the same Parquet outputs after {kills} kills");
}

#[test]
fn sql_job_survives_sigkills_local_1() {
    sql_job_survives_sigkills("local[1]");
}

#[test]
fn sql_job_survives_sigkills_local_3() {
    sql_job_survives_sigkills("local[3]");
}

#[test]
fn sql_job_survives_sigkills_2_processes() {
    sql_job_survives_sigkills("cluster");
}
