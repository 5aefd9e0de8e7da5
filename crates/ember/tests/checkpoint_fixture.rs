//! A checkpoint written by this version of Ember (plan format 2) is committed under
//! `tests/fixtures/checkpoint-v2`: every later version must recover it and go on as an
//! uninterrupted run does. The job holds operations that add internal nodes (`reduce_by_key`,
//! `print`) before and between its stateful ones, so a change of how an operation is built inside
//! cannot go unnoticed. `write_the_checkpoint_fixture` (ignored) writes the fixture again; do that
//! only when the plan format changes, and keep the old fixture's test as long as its format is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ember::prelude::*;
use ember::testing::exclusive;
use ember::{Clock, GeneratedText};

const START: u64 = 1_700_000_000_000;
/// Batches the fixture's job ran before it stopped.
const WRITTEN: u64 = 9;
/// Batches of the whole comparison run.
const END: u64 = 14;

type Out = Vec<ember::BatchCollector<(String, u64)>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn conf() -> Conf {
    Conf::new()
        .master("local[2]")
        .app_name("CheckpointFixture")
        .manual_clock(true)
        .set("clock.manual.start", START.to_string())
        .set("checkpoint.sync", "false")
}

fn job() -> ember::Result<(StreamingContext, Out)> {
    let ssc = StreamingContext::new(conf(), Duration::from_secs(1))?;
    let text = GeneratedText { lines_per_second: 30, words_per_line: 3, vocabulary: 20, skew: 1.0, seed: 11 };
    let words = ssc
        .generated_text_stream_with(text)
        .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    let counts = words.reduce_by_key(|a, b| a + b);
    counts.print();
    let totals = counts
        .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.iter().sum::<u64>()))
        .checkpoint(ms(2000));
    let windowed = words.reduce_by_key_and_window_inverse(|a, b| a + b, |a, b| a - b, ms(4000), ms(2000));
    let seen = words.map_with_state(StateSpec::function(|w: &String, n: Option<u64>, st: &mut State<u64>| {
        let total = st.get().copied().unwrap_or(0) + n.unwrap_or(0);
        st.update(total);
        (w.clone(), total)
    }));
    let outs = vec![totals.collect_batches(), windowed.collect_batches(), seen.collect_batches()];
    Ok((ssc, outs))
}

/// Every output's batches, each sorted, by (batch time, output).
fn by_time(outs: &Out) -> BTreeMap<(u64, usize), Vec<(String, u64)>> {
    let mut all = BTreeMap::new();
    for (i, c) in outs.iter().enumerate() {
        for (t, mut b) in c.batches() {
            b.sort();
            all.insert((t.millis(), i), b);
        }
    }
    all
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-v2")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())).flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_committed_checkpoint_recovers_and_goes_on_as_an_uninterrupted_run() {
    let _g = exclusive();
    let straight = {
        let (ssc, outs) = job().unwrap();
        ssc.run_batches(END).unwrap();
        ssc.stop(false).unwrap();
        by_time(&outs)
    };
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let mut outs = None;
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        let (ssc, o) = job()?;
        ssc.checkpoint(dir.path());
        outs = Some(o);
        Ok(ssc)
    })
    .unwrap();
    ssc.start().unwrap();
    let now = ssc.manual_clock().unwrap().now_millis();
    assert!(now > START && now < START + WRITTEN * 1000, "recovered from the fixture's checkpoint ({now})");
    ssc.run_batches((START + END * 1000 - now) / 1000).unwrap();
    ssc.stop(false).unwrap();
    let recovered = by_time(outs.as_ref().unwrap());
    assert!(!recovered.is_empty(), "the recovered job ran batches");
    for (key, batch) in &recovered {
        assert_eq!(Some(batch), straight.get(key), "output {} of batch {} after recovery", key.1, key.0);
    }
    let last = recovered.keys().map(|k| k.0).max();
    assert_eq!(last, Some(START + END * 1000), "the recovered job ran to the end");
}

#[test]
#[ignore = "writes tests/fixtures/checkpoint-v2; run only when the plan format changes"]
fn write_the_checkpoint_fixture() {
    let _g = exclusive();
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    let (ssc, _outs) = job().unwrap();
    ssc.checkpoint(&dir);
    ssc.run_batches(WRITTEN).unwrap();
    ssc.stop(false).unwrap();
}
