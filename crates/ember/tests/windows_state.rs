//! Windows and state against a naive recomputation from the full input history, at every batch,
//! under local[1], local[3] and 2 processes x 2 workers.

mod common;

use common::{norm, rng};

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use ember::dstream::map_with_state::{State, StateSpec};
use ember::testing::{exclusive, manual_context};
use ember::{BatchCollector, Conf, DStream, StreamingContext};

type Pair = (u32, i64);
const N: usize = 12;
const B: u64 = 1000;
/// (window, slide): w = interval, w = s, w = 3s, w < s, and an overlapping w > s.
const COMBOS: [(u64, u64); 5] = [(1000, 1000), (2000, 2000), (3000, 1000), (1000, 2000), (3000, 2000)];

fn input(seed: u64) -> Vec<Vec<Pair>> {
    let mut r = rng(seed);
    (0..N)
        .map(|_| {
            let n = if r().is_multiple_of(4) { 0 } else { (r() % 12) as usize };
            (0..n).map(|_| ((r() % 6) as u32, (r() % 7) as i64 - 3)).collect()
        })
        .collect()
}

type Results = BTreeMap<String, Vec<String>>;
type Readers = Vec<(String, Box<dyn Fn() -> Vec<String>>)>;

fn add<T: ember::Data + Debug + Ord>(readers: &mut Readers, name: String, c: BatchCollector<T>) {
    readers.push((
        name,
        Box::new(move || c.batches().into_iter().map(|(t, b)| format!("{} {}", t.millis(), norm(b))).collect()),
    ));
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn declare(ssc: &StreamingContext, seed: u64) -> impl FnOnce() -> Results {
    let a: DStream<Pair> = ssc.queue_stream(input(seed), true);
    let b: DStream<Pair> = ssc.queue_stream(input(seed + 7), true);
    let mut r: Readers = Vec::new();
    for (w, s) in COMBOS {
        let tag = |op: &str| format!("{op} w={w} s={s}");
        add(&mut r, tag("window"), a.window(ms(w), ms(s)).collect_batches());
        let values = a.map(|p| p.1);
        add(&mut r, tag("reduce_by_window"), values.reduce_by_window(|x, y| x + y, ms(w), ms(s)).collect_batches());
        add(
            &mut r,
            tag("reduce_by_window_inverse"),
            values.reduce_by_window_inverse(|x, y| x + y, |x, y| x - y, ms(w), ms(s)).collect_batches(),
        );
        add(&mut r, tag("count_by_window"), a.count_by_window(ms(w), ms(s)).collect_batches());
        add(
            &mut r,
            tag("reduce_by_key_and_window"),
            a.reduce_by_key_and_window(|x, y| x + y, ms(w), ms(s)).collect_batches(),
        );
        add(
            &mut r,
            tag("reduce_by_key_and_window_inverse"),
            a.reduce_by_key_and_window_inverse(|x, y| x + y, |x, y| x - y, ms(w), ms(s)).collect_batches(),
        );
        let positive = a.map_values(|v| v.abs() + 1);
        add(
            &mut r,
            tag("inverse_filtered"),
            positive
                .reduce_by_key_and_window_inverse_filtered(|x, y| x + y, |x, y| x - y, |_k, v| *v != 0, ms(w), ms(s))
                .collect_batches(),
        );
        add(&mut r, tag("count_by_value_and_window"), a.count_by_value_and_window(ms(w), ms(s)).collect_batches());
        add(
            &mut r,
            tag("group_by_key_and_window"),
            a.group_by_key_and_window(ms(w), ms(s))
                .map_values(|mut v| {
                    v.sort();
                    v
                })
                .collect_batches(),
        );
    }
    add(&mut r, "window_of_window".into(), a.window(ms(2000), ms(1000)).window(ms(4000), ms(2000)).collect_batches());
    add(
        &mut r,
        "join_of_windows".into(),
        a.window(ms(2000), ms(1000)).join(&b.window(ms(2000), ms(1000))).collect_batches(),
    );
    add(
        &mut r,
        "union_of_windows".into(),
        a.window(ms(2000), ms(1000)).union(&b.window(ms(3000), ms(1000))).collect_batches(),
    );
    add(&mut r, "update_state_by_key".into(), a.update_state_by_key(update).collect_batches());
    let spec = StateSpec::function(track).timeout(ms(2000));
    let mapped = a.map_with_state(spec);
    // With a checkpoint directory: every stateful operator saves its state every 2 s.
    mapped.checkpoint(ms(2000));
    add(&mut r, "map_with_state".into(), (*mapped).clone().collect_batches());
    add(&mut r, "state_snapshots".into(), mapped.state_snapshots().collect_batches());
    move || r.into_iter().map(|(n, f)| (n, f())).collect()
}

/// Running sum; a key whose sum leaves [-6, 6] is removed (and may come back later).
fn update(vs: Vec<i64>, st: Option<i64>) -> Option<i64> {
    let s = st.unwrap_or(0) + vs.iter().sum::<i64>();
    (s.abs() <= 6).then_some(s)
}

/// Counts records per key (order-insensitive); past 5 the state is removed; a timed-out key
/// reports 100 + its count.
fn track(k: &u32, v: Option<i64>, st: &mut State<u64>) -> (u32, i64) {
    if st.is_timing_out() {
        return (*k, 100 + *st.get().unwrap() as i64);
    }
    assert!(v.is_some());
    let n = st.get().copied().unwrap_or(0) + 1;
    if n > 5 {
        st.remove();
        (*k, -1)
    } else {
        st.update(n);
        (*k, n as i64)
    }
}

fn expected(seed: u64) -> Results {
    let (ia, ib) = (input(seed), input(seed + 7));
    let time = |k: usize| (k as u64 + 1) * B;
    let in_window = |batches: &[Vec<Pair>], t: u64, w: u64| -> Vec<Pair> {
        (0..N).filter(|&k| time(k) + w > t && time(k) <= t).flat_map(|k| batches[k].clone()).collect()
    };
    let sums = |records: &[Pair]| {
        let mut m: BTreeMap<u32, i64> = BTreeMap::new();
        records.iter().for_each(|&(k, v)| *m.entry(k).or_default() += v);
        m
    };
    let mut r: Results = BTreeMap::new();
    let mut put = |name: &str, t: u64, v: String| r.entry(name.to_string()).or_default().push(format!("{t} {v}"));
    for (w, s) in COMBOS {
        let tag = |op: &str| format!("{op} w={w} s={s}");
        let mut seen_any = false;
        let mut seen_keys: std::collections::BTreeSet<u32> = Default::default();
        for t in (1..).map(|i| i * s).take_while(|&t| t <= N as u64 * B) {
            let rec = in_window(&ia, t, w);
            let total: i64 = rec.iter().map(|p| p.1).sum();
            seen_any |= !rec.is_empty();
            put(&tag("window"), t, norm(rec.clone()));
            put(&tag("reduce_by_window"), t, norm(if rec.is_empty() { vec![] } else { vec![total] }));
            put(&tag("reduce_by_window_inverse"), t, norm(if seen_any { vec![total] } else { vec![] }));
            put(&tag("count_by_window"), t, norm(if seen_any { vec![rec.len() as u64] } else { vec![] }));
            let by_key = sums(&rec);
            put(&tag("reduce_by_key_and_window"), t, norm(by_key.iter().map(|(k, v)| (*k, *v)).collect()));
            seen_keys.extend(by_key.keys());
            put(
                &tag("reduce_by_key_and_window_inverse"),
                t,
                norm(seen_keys.iter().map(|k| (*k, by_key.get(k).copied().unwrap_or(0))).collect()),
            );
            let positive: Vec<Pair> = rec.iter().map(|&(k, v)| (k, v.abs() + 1)).collect();
            put(&tag("inverse_filtered"), t, norm(sums(&positive).into_iter().collect()));
            let mut counts: BTreeMap<Pair, u64> = BTreeMap::new();
            rec.iter().for_each(|p| *counts.entry(*p).or_default() += 1);
            put(&tag("count_by_value_and_window"), t, norm(counts.into_iter().collect()));
            let mut groups: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
            rec.iter().for_each(|&(k, v)| groups.entry(k).or_default().push(v));
            groups.values_mut().for_each(|v| v.sort());
            put(&tag("group_by_key_and_window"), t, norm(groups.into_iter().collect()));
        }
    }
    for t in (1..).map(|i| i * 2000).take_while(|&t| t <= N as u64 * B) {
        let rec: Vec<Pair> = (0..4)
            .filter_map(|i| t.checked_sub(i * B))
            .filter(|&u| u > 0)
            .flat_map(|u| in_window(&ia, u, 2000))
            .collect();
        put("window_of_window", t, norm(rec));
    }
    let mut state: BTreeMap<u32, i64> = BTreeMap::new();
    let mut tracked: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for k in 0..N {
        let t = time(k);
        let (wa, wb) = (in_window(&ia, t, 2000), in_window(&ib, t, 2000));
        let mut join = Vec::new();
        for &(ka, va) in &wa {
            for &(kb, vb) in &wb {
                if ka == kb {
                    join.push((ka, (va, vb)));
                }
            }
        }
        put("join_of_windows", t, norm(join));
        put("union_of_windows", t, norm(wa.iter().chain(&in_window(&ib, t, 3000)).copied().collect()));
        // update_state_by_key
        let mut new: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
        ia[k].iter().for_each(|&(key, v)| new.entry(key).or_default().push(v));
        let keys: std::collections::BTreeSet<u32> = state.keys().chain(new.keys()).copied().collect();
        for key in keys {
            match update(new.get(&key).cloned().unwrap_or_default(), state.get(&key).copied()) {
                Some(s) => state.insert(key, s),
                None => state.remove(&key),
            };
        }
        put("update_state_by_key", t, norm(state.iter().map(|(k, v)| (*k, *v)).collect()));
        // map_with_state with a 2 s timeout
        let mut out = Vec::new();
        for &(key, _) in &ia[k] {
            let n = tracked.get(&key).map_or(0, |e| e.0) + 1;
            if n > 5 {
                tracked.remove(&key);
                out.push((key, -1));
            } else {
                tracked.insert(key, (n, t));
                out.push((key, n as i64));
            }
        }
        let expired: Vec<u32> = tracked.iter().filter(|(_, (_, last))| last + 2000 < t).map(|(k, _)| *k).collect();
        for key in expired {
            let (n, _) = tracked.remove(&key).unwrap();
            out.push((key, 100 + n as i64));
        }
        put("map_with_state", t, norm(out));
        put("state_snapshots", t, norm(tracked.iter().map(|(k, (n, _))| (*k, *n)).collect()));
    }
    r
}

fn check(got: &Results, want: &Results, label: &str) {
    for (op, batches) in want {
        assert_eq!(got.get(op), Some(batches), "`{op}` under {label}");
    }
    assert_eq!(got.len(), want.len());
}

/// Runs the job, with a checkpoint directory when `checkpointed` (the state is saved every 2 s;
/// results must not change).
fn run(master: &str, seed: u64, checkpointed: bool) {
    let _g = exclusive();
    let ssc = manual_context(master);
    let dir = tempfile::tempdir().unwrap();
    if checkpointed {
        ssc.checkpoint(dir.path());
    }
    let read = declare(&ssc, seed);
    ssc.run_batches(N as u64).unwrap();
    ssc.stop(false).unwrap();
    check(&read(), &expected(seed), &format!("{master}, seed {seed}, checkpointed: {checkpointed}"));
    if checkpointed {
        assert!(dir.path().join("commits/12000").exists(), "the checkpoint of batch 12 was committed");
    }
}

#[test]
fn windows_and_state_local_1() {
    for seed in 1..4 {
        run("local[1]", seed, false);
    }
}

#[test]
fn windows_and_state_local_3() {
    for seed in 1..4 {
        run("local[3]", seed, false);
    }
}

#[test]
fn windows_and_state_with_a_checkpoint_directory() {
    for master in ["local[1]", "local[3]"] {
        run(master, 5, true);
    }
}

#[test]
#[ignore = "run as a child process by `windows_and_state_two_processes`"]
fn windows_and_state_cluster_child() {
    let ssc = StreamingContext::new(Conf::new().manual_clock(true), Duration::from_secs(1)).unwrap();
    if let Ok(dir) = std::env::var("EMBER_TEST_CHECKPOINT") {
        ssc.checkpoint(dir);
    }
    let read = declare(&ssc, 11);
    ssc.run_batches(N as u64).unwrap();
    ssc.stop(false).unwrap();
    for (op, batches) in read() {
        for b in batches {
            println!("WS {op}|{b}");
        }
    }
}

#[test]
fn windows_and_state_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let with_dir = [("EMBER_TEST_CHECKPOINT", dir.path().display().to_string())];
    for extra in [&[][..], &with_dir[..]] {
        let outputs = common::run_cluster("windows_and_state_cluster_child", extra);
        let mut got: Results = BTreeMap::new();
        for line in common::tagged(&outputs[0].stdout, "WS") {
            let (op, b) = line.split_once('|').unwrap();
            got.entry(op.to_string()).or_default().push(b.to_string());
        }
        check(&got, &expected(11), &format!("2 processes x 2 workers, checkpointed: {}", !extra.is_empty()));
    }
    assert!(dir.path().join("commits/12000").exists(), "the checkpoint of batch 12 was committed");
}

#[test]
fn inverse_and_plain_forms_agree_but_for_zero_valued_keys() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let a = ssc.queue_stream(input(3), true);
    let plain = a.reduce_by_key_and_window(|x, y| x + y, ms(3000), ms(1000)).collect_batches();
    let inverse = a.reduce_by_key_and_window_inverse(|x, y| x + y, |x, y| x - y, ms(3000), ms(1000)).collect_batches();
    ssc.run_batches(N as u64).unwrap();
    ssc.stop(false).unwrap();
    for ((t, p), (_, i)) in plain.batches().into_iter().zip(inverse.batches()) {
        let p: BTreeMap<u32, i64> = p.into_iter().collect();
        let i: BTreeMap<u32, i64> = i.into_iter().collect();
        for (k, v) in &i {
            assert_eq!(p.get(k).copied().unwrap_or(0), *v, "key {k} at {t}");
        }
        assert!(p.keys().all(|k| i.contains_key(k)), "every key of the plain form is in the inverse form at {t}");
    }
}

#[test]
fn window_declaration_errors_name_both_durations() {
    let _g = exclusive();
    // Spark's case: W = 18 s, S = 10 s on B = 5 s batches.
    let ssc = StreamingContext::new(Conf::new().manual_clock(true).master("local[1]"), Duration::from_secs(5)).unwrap();
    ssc.queue_stream(vec![vec![1]], true)
        .window(Duration::from_secs(18), Duration::from_secs(10))
        .count()
        .collect_batches();
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("window duration of windowed DStream (18000 ms) must be a multiple of the slide duration of parent DStream (5000 ms)"), "{e}");
    let ssc = StreamingContext::new(Conf::new().manual_clock(true).master("local[1]"), Duration::from_secs(5)).unwrap();
    ssc.queue_stream(vec![vec![(1, 1)]], true)
        .reduce_by_key_and_window(|a: i32, b| a + b, Duration::from_secs(20), Duration::from_secs(7))
        .count()
        .collect_batches();
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("slide duration of windowed DStream (7000 ms) must be a multiple of the slide duration of parent DStream (5000 ms)"), "{e}");
}

#[test]
fn one_million_distinct_keys_in_state() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let keys: Vec<(u32, u64)> = (0..1_000_000).map(|k| (k, 1)).collect();
    let s = ssc.queue_stream(vec![keys, vec![(7, 1)]], true);
    let sizes = s
        .update_state_by_key(|vs: Vec<u64>, st: Option<u64>| Some(st.unwrap_or(0) + vs.len() as u64))
        .count()
        .collect_batches();
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(sizes.batches().into_iter().map(|(_, c)| c[0]).collect::<Vec<_>>(), vec![1_000_000, 1_000_000]);
}

#[test]
fn spark_alignment_example_golden() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let out = ssc
        .queue_stream((1..=6).map(|i| vec![i]).collect::<Vec<Vec<u32>>>(), true)
        .window(ms(3000), ms(2000))
        .collect_batches();
    ssc.run_batches(6).unwrap();
    ssc.stop(false).unwrap();
    let got: Vec<(u64, Vec<u32>)> = out
        .batches()
        .into_iter()
        .map(|(t, mut b)| {
            b.sort();
            (t.millis(), b)
        })
        .collect();
    assert_eq!(got, vec![(2000, vec![1, 2]), (4000, vec![2, 3, 4]), (6000, vec![4, 5, 6])]);
}

#[test]
fn initial_states_reach_the_workers_that_own_their_keys() {
    let _g = exclusive();
    let ssc = manual_context("local[3]");
    let initial: Vec<(u32, i64)> = (0..100).map(|k| (k, 1000 + k as i64)).collect();
    let s = ssc.queue_stream(vec![(0..100).map(|k| (k, 1i64)).collect::<Vec<_>>()], true);
    let updated = s
        .update_state_by_key_with_initial(
            |vs: Vec<i64>, st: Option<i64>| Some(st.unwrap_or(0) + vs.iter().sum::<i64>()),
            initial.clone(),
        )
        .collect_batches();
    let spec = StateSpec::function(|_k: &u32, v: Option<i64>, st: &mut State<i64>| {
        let n = st.get().copied().unwrap_or(0) + v.unwrap_or(0);
        st.update(n);
        n
    })
    .initial_state(initial);
    let mapped = s.map_with_state(spec);
    let snapshots = mapped.state_snapshots().collect_batches();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let want: Vec<(u32, i64)> = (0..100).map(|k| (k, 1001 + k as i64)).collect();
    let mut got = updated.batches()[0].1.clone();
    got.sort();
    assert_eq!(got, want, "every key met its initial state on its owner");
    let mut got = snapshots.batches()[0].1.clone();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn misusing_the_state_fails_the_batch_with_an_error_that_says_how() {
    type Misuse = fn(&mut State<u64>);
    let cases: [(&str, Misuse); 4] = [
        ("the state was updated after it had been removed", |st| {
            st.remove();
            st.update(1);
        }),
        ("the state was removed twice", |st| {
            st.remove();
            st.remove();
        }),
        ("the state of a key that is timing out was updated", |st| st.update(9)),
        ("the state of a key that is timing out was removed", |st| st.remove()),
    ];
    for (what, misuse) in cases {
        let _g = exclusive();
        let ssc = manual_context("local[2]");
        let timing_out = what.contains("timing out");
        let spec = StateSpec::function(move |_k: &u32, _v: Option<u64>, st: &mut State<u64>| {
            if st.is_timing_out() == timing_out {
                misuse(st);
            } else {
                st.update(1);
            }
            0u64
        });
        ssc.queue_stream(vec![vec![(1u32, 1u64), (2, 1)]], true)
            .map_with_state(spec.timeout(Duration::from_secs(1)))
            .foreach_batch(|_t, _records| ());
        let e = ssc.run_batches(4).expect_err(what).to_string();
        assert!(e.contains(what) && e.contains("map_with_state"), "{what}: {e}");
        let _ = ssc.stop(false);
    }
}
