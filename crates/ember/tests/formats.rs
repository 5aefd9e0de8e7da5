//! File formats: what `save_as_files` and `save_as_object_files` write, `file_stream` and
//! `object_file_stream` read back; bad lines and damaged object files are counted skips.

use std::path::Path;
use std::time::Duration;

use ember::format::{Csv, JsonLines, ObjectFile};
use ember::operator::SkipCounters;
use ember::{Conf, StreamingContext};
use serde::{Deserialize, Serialize};

const START: u64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Click {
    page: String,
    user: Option<u32>,
    ms: f64,
}

fn clicks(batch: u32) -> Vec<Click> {
    (0..5)
        .map(|i| Click { page: format!("/p{batch}, \"{i}\""), user: (i % 2 == 0).then_some(i), ms: i as f64 / 2.0 })
        .collect()
}

fn context(master: &str) -> StreamingContext {
    let conf = Conf::new().master(master).manual_clock(true).set("clock.manual.start", START.to_string());
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

/// Moves every part file of the committed batch directories under `out` (named `prefix-*`)
/// into `into`, with modification times inside the first batch of a job started at `START`.
fn move_parts(out: &Path, prefix: &str, into: &Path) -> usize {
    std::fs::create_dir_all(into).unwrap();
    let mut moved = 0;
    for dir in std::fs::read_dir(out).unwrap().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || name.contains("._") {
            continue;
        }
        assert!(dir.path().join("_SUCCESS").exists(), "{name} is committed");
        for part in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let file = part.file_name().to_string_lossy().into_owned();
            if file.starts_with("part-") {
                let target = into.join(format!("{name}-{file}"));
                std::fs::rename(part.path(), &target).unwrap();
                let f = std::fs::OpenOptions::new().write(true).open(&target).unwrap();
                f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(START + 500)).unwrap();
                moved += 1;
            }
        }
    }
    moved
}

fn sorted(mut v: Vec<Click>) -> Vec<Click> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

#[test]
fn every_format_reads_back_what_it_wrote() {
    for master in ["local[1]", "local[3]"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let ssc = context(master);
        let stream = ssc.queue_stream(vec![clicks(0), clicks(1)], true);
        stream.save_as_files(out.join("json").display().to_string(), "", JsonLines);
        stream.save_as_files(out.join("csv").display().to_string(), "csv", Csv { header: true });
        stream.save_as_object_files(out.join("objects").display().to_string(), "");
        ssc.run_batches(2).unwrap();
        ssc.stop(false).unwrap();
        let want = sorted([clicks(0), clicks(1)].concat());
        let input = dir.path().join("in");
        for (prefix, n) in [("json", 2), ("csv", 2), ("objects", 2)] {
            assert!(move_parts(&out, prefix, &input.join(prefix)) >= n, "{master}: {prefix} parts written");
        }
        let ssc = context(master);
        let json = ssc.file_stream::<Click>(input.join("json"), JsonLines).collect_batches();
        let csv = ssc.file_stream::<Click>(input.join("csv"), Csv { header: true }).collect_batches();
        let objects = ssc.object_file_stream::<Click>(input.join("objects")).collect_batches();
        ssc.run_batches(2).unwrap();
        ssc.stop(false).unwrap();
        for (name, got) in [("json", json), ("csv", csv), ("objects", objects)] {
            let batches = got.batches();
            assert_eq!(sorted(batches[0].1.clone()), want, "{master}: {name} read back in the first batch");
            assert!(batches[1].1.is_empty(), "{master}: {name} files are read once");
        }
    }
}

#[test]
fn bad_lines_and_damaged_object_files_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str, file: &str, bytes: &[u8]| {
        let path = dir.path().join(sub).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(START + 500)).unwrap();
    };
    write(
        "json",
        "a.json",
        b"{\"page\":\"/x\",\"user\":1,\"ms\":2.0}\nnot json\n{\"page\":7}\n{\"page\":\"/y\",\"user\":null,\"ms\":0}\n",
    );
    write("csv", "a.csv", b"page,user,ms\n/x,1,2.0\n/too,few\n/y,,0\n");
    let mut good = Vec::new();
    ember::format::FileFormat::<Click>::encode(&ObjectFile, &clicks(0), &mut good).unwrap();
    let mut damaged = good.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x20;
    write("objects", "good", &good);
    write("objects", "damaged", &damaged);
    write("objects", "not-an-object-file", b"hello");
    let ssc = context("local[2]");
    let json = ssc.file_stream::<Click>(dir.path().join("json"), JsonLines).collect_batches();
    let csv = ssc.file_stream::<Click>(dir.path().join("csv"), Csv { header: true }).collect_batches();
    let objects = ssc.object_file_stream::<Click>(dir.path().join("objects")).collect_batches();
    ssc.run_batches(1).unwrap();
    let skips = ssc.extension::<SkipCounters>().values();
    ssc.stop(false).unwrap();
    let pages = |b: &ember::BatchCollector<Click>| -> Vec<String> {
        let mut p: Vec<String> = b.batches()[0].1.iter().map(|c| c.page.clone()).collect();
        p.sort();
        p
    };
    assert_eq!(pages(&json), vec!["/x", "/y"], "the good lines of the JSON file");
    assert_eq!(pages(&csv), vec!["/x", "/y"], "the good rows of the CSV file");
    assert_eq!(sorted(objects.batches()[0].1.clone()), sorted(clicks(0)), "the good object file only, whole");
    let counts: Vec<u64> = skips.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, vec![2, 1, 2], "skips per input, in declaration order: {skips:?}");
}

/// The rolling files under `dir`: name → lines, sorted (a worker's share of a batch comes in
/// no fixed order).
fn rolled(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let sorted_lines = |text: String| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        lines.join("\n")
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Default::default() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Temporary files of a write in progress (the SIGKILL test reads while the job runs).
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| Some((n.clone(), sorted_lines(std::fs::read_to_string(dir.join(&n)).ok()?))))
        .collect()
}

#[test]
fn rolling_files_close_every_n_batches_or_at_m_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let ssc = context("local[2]");
    let batches: Vec<Vec<u32>> = (0..10).map(|b| (0..6).map(|i| b * 10 + i).collect()).collect();
    let numbers = ssc.queue_stream(batches, true);
    let every_4 = dir.path().join("every4");
    numbers.save_as_rolling_files(
        every_4.join("n").display().to_string(),
        "json",
        JsonLines,
        ember::Roll { batches: 4, bytes: 0 },
    );
    let by_size = dir.path().join("bysize");
    numbers.save_as_rolling_files(
        by_size.join("n").display().to_string(),
        "",
        JsonLines,
        ember::Roll { batches: 1000, bytes: 20 },
    );
    ssc.run_batches(10).unwrap();
    ssc.stop(false).unwrap();
    // Batch times START+1000 .. START+10000; files close where the time is a multiple of 4 s.
    let files = rolled(&every_4);
    let ranges: std::collections::BTreeSet<(u64, u64)> = files
        .keys()
        .map(|n| {
            let parts: Vec<&str> = n.trim_end_matches(".json").split('-').collect();
            (parts[1].parse().unwrap(), parts[2].parse().unwrap())
        })
        .collect();
    let closes: Vec<u64> = (1..=10).map(|b| START + b * 1000).filter(|t| (t / 1000) % 4 == 0).collect();
    let expected: std::collections::BTreeSet<(u64, u64)> = closes
        .iter()
        .enumerate()
        .map(|(i, &c)| (if i == 0 { START + 1000 } else { closes[i - 1] + 1000 }, c))
        .collect();
    assert_eq!(ranges, expected, "files per roll of batches: {:?}", files.keys());
    let mut written: Vec<u32> = files.values().flat_map(|c| c.lines().map(|l| l.parse::<u32>().unwrap())).collect();
    written.sort();
    let last_close = (closes.last().unwrap() - START) / 1000;
    let want: Vec<u32> = (0..last_close as u32).flat_map(|b| (0..6).map(move |i| b * 10 + i)).collect();
    assert_eq!(written, want, "every record of the closed rolls, once; the open roll waits");
    // By size: a worker's file closes once it holds 20 bytes (about two batches of its share).
    let sizes = rolled(&by_size);
    assert!(sizes.len() >= 4, "{:?}", sizes.keys());
    assert!(sizes.values().all(|c| c.len() >= 20), "{sizes:?}");
}

const ROLL_BATCHES: u64 = 24;

fn rolling_job(_input: &Path, out: &Path, ck: &Path, master: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    ember::testing::generated_word_counts(&ssc).save_as_rolling_files(
        out.join("counts").display().to_string(),
        "json",
        JsonLines,
        ember::Roll { batches: 3, bytes: 600 },
    );
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn rolling_kill_child() {
    ember::testing::run_kill_child(START + ROLL_BATCHES * 1000, rolling_job);
}

/// An uninterrupted run and a run killed 12 times write the same rolling files: `cluster` runs
/// 2 processes x 2 workers.
fn rolling_files_survive_sigkills(master: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, ck: &Path| ember::testing::kill_run_commands("rolling_kill_child", out, ck, master);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ember::testing::run_all(run(&a, &dir.path().join("ck-a")), &format!("{master}: the uninterrupted run"));
    let straight = rolled(&a);
    assert!(straight.len() >= ROLL_BATCHES as usize / 3, "{master}: files of every roll: {}", straight.len());
    let kills = ember::testing::kill_and_restart_all(
        || run(&b, &dir.path().join("ck-b")),
        12,
        || {
            rolled(&b)
                .keys()
                .filter_map(|n| n.split('-').nth(2)?.parse::<u64>().ok())
                .max()
                .map_or(0, |t| (t - START) / 1000)
        },
        ROLL_BATCHES,
    );
    assert!(kills >= 8, "{master}: only {kills} kills landed");
    assert_eq!(rolled(&b), straight, "{master}: the same files with the same contents after {kills} kills");
}

#[test]
fn rolling_files_survive_sigkills_local_1() {
    rolling_files_survive_sigkills("local[1]");
}

#[test]
fn rolling_files_survive_sigkills_local_3() {
    rolling_files_survive_sigkills("local[3]");
}

#[test]
fn rolling_files_survive_sigkills_2_processes() {
    rolling_files_survive_sigkills("cluster");
}
