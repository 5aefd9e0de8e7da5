//! Every stateful operation with a checkpoint directory, and stateful operators built with the
//! operator kit as another crate would, killed with SIGKILL at random points and restarted,
//! under `local[1]`, `local[3]` and 2 processes x 2 workers: the saved outputs of every batch
//! equal those of an uninterrupted run.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember::dstream::map_with_state::{State, StateSpec};
use ember::StreamingContext;

const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 24;

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

/// Input files with modification times spread over the batches.
fn write_input(dir: &Path) {
    let mut r = common::rng(17);
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..60u64 {
        let lines: Vec<String> = (0..(r() % 4 + 1))
            .map(|_| (0..(r() % 5 + 1)).map(|_| format!("k{}", r() % 9)).collect::<Vec<_>>().join(" "))
            .collect();
        let path = dir.join(format!("part-{i:03}.txt"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mtime = START + 1 + i * (BATCHES - 2) * 1000 / 60;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + ms(mtime)).unwrap();
    }
}

/// Running count per key; a key past 6 starts over.
fn count(k: &String, v: Option<u64>, st: &mut State<u64>) -> (String, u64) {
    if st.is_timing_out() {
        return (format!("timed out {k}"), st.get().copied().unwrap_or(0));
    }
    let n = st.get().copied().unwrap_or(0) + v.unwrap_or(0);
    if n > 6 {
        st.remove()
    } else {
        st.update(n)
    }
    (k.clone(), n)
}

fn build(input: &Path, out: &Path, ck: &Path, master: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    let save = |name: &str| out.join(name).display().to_string();
    let words = ssc
        .text_file_stream(input)
        .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    let values = words.map(|(_, n)| n);
    words.window(ms(3000), ms(1000)).count_by_value().save_as_text_files(save("window"), "");
    values.reduce_by_window(|a, b| a + b, ms(4000), ms(2000)).save_as_text_files(save("reduce_by_window"), "");
    values
        .reduce_by_window_inverse(|a, b| a + b, |a, b| a - b, ms(3000), ms(1000))
        .save_as_text_files(save("reduce_by_window_inverse"), "");
    words.reduce_by_key_and_window(|a, b| a + b, ms(2000), ms(2000)).save_as_text_files(save("rbkw"), "");
    words
        .reduce_by_key_and_window_inverse(|a, b| a + b, |a, b| a - b, ms(4000), ms(1000))
        .save_as_text_files(save("rbkw_inverse"), "");
    words
        .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.iter().sum::<u64>()))
        .checkpoint(ms(2000))
        .save_as_text_files(save("update_state"), "");
    words.map_with_state(StateSpec::function(count)).save_as_text_files(save("map_with_state"), "");
    let timed = words.map_with_state(StateSpec::function(count).timeout(ms(2000)));
    timed.save_as_text_files(save("map_with_state_timeout"), "");
    timed.state_snapshots().save_as_text_files(save("snapshots"), "");
    // Two operators built with the operator kit, as another crate builds them: a running total
    // per key (per_batch_stateful after a key exchange) and the records so far (driver_state);
    // nothing here wires their state into checkpoints.
    words
        .operator("running totals", |b| {
            b.exchange_by_key().per_batch_stateful(
                "totals",
                std::collections::BTreeMap::<String, u64>::new(),
                |_t, words, totals, out| {
                    for (w, n) in words {
                        *totals.entry(w).or_default() += n;
                    }
                    out.extend(totals.iter().map(|(w, n)| (w.clone(), *n)));
                },
            )
        })
        .save_as_text_files(save("kit_per_batch_stateful"), "");
    values
        .operator("records so far", |b| {
            on_the_driver(b.per_batch("partial", |_t, xs: Vec<u64>, out| out.push(xs.len() as u64)).driver_state(
                "records",
                0u64,
                |_t, partials, total| *total += partials.iter().sum::<u64>(),
            ))
        })
        .save_as_text_files(save("kit_driver_state"), "");
    // A state trained batch after batch (train_per_batch): each worker weighs its records by
    // the state after the previous batch, so a state restored wrong changes every later one.
    values
        .operator("trained", |b| {
            on_the_driver(b.train_per_batch(
                "mix",
                (0u64, 1u64),
                |_t, xs: Vec<u64>, &(n, mix): &(u64, u64), out| {
                    out.push((xs.len() as u64, xs.len() as u64 * (mix % 7 + 1) + n % 3));
                },
                |_t, parts, (n, mix)| {
                    for (_worker, (count, weighed)) in parts {
                        *n += count;
                        *mix = mix.wrapping_mul(31).wrapping_add(weighed) % 1_000_003;
                    }
                },
            ))
        })
        .save_as_text_files(save("kit_train_per_batch"), "");
    // The same in rounds (train_per_batch_in_rounds), with a number of rounds that depends on
    // the state.
    values
        .operator("trained in rounds", |b| {
            on_the_driver(b.train_per_batch_in_rounds(
                "rounds",
                (0u64, 1u64),
                5,
                |_t, round, xs: &[u64], &(_, mix): &(u64, u64)| xs.len() as u64 * (mix % 5 + u64::from(round)),
                |_t, round, parts, (n, mix)| {
                    for (_worker, weighed) in parts {
                        *mix = (mix.wrapping_mul(31) + weighed) % 1_000_003;
                    }
                    *n += 1;
                    u64::from(round) < *mix % 3 + 1
                },
            ))
        })
        .save_as_text_files(save("kit_train_per_batch_in_rounds"), "");
    let records = ssc.accumulator("records");
    let dir = accumulator_dir(out);
    words.foreach_batch(move |t, batch| -> ember::Result<()> {
        records.add(batch.len() as i64);
        // Saved per batch, replaced when the batch runs again.
        let (tmp, path) = (dir.join(format!(".acc-{}", t.millis())), dir.join(format!("acc-{}", t.millis())));
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&tmp, records.value().to_string()))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| ember::Error::io("saving the accumulator", e))
    });
    Ok(ssc)
}

/// The driver worker's records of each batch, of a state every worker holds a copy of.
fn on_the_driver<S: ember::Data>(b: ember::operator::Batches<'_, S>) -> ember::operator::Batches<'_, S> {
    let driver = b.is_driver();
    b.per_batch("on the driver", move |_t, states, out| {
        if driver {
            out.extend(states)
        }
    })
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn stateful_kill_child() {
    ember::testing::run_kill_child(START + BATCHES * 1000, build);
}

/// Starts one run of the job: one child process, or two for `cluster`.
fn start(master: &str, input: &Path, out: &Path, ck: &Path) -> Vec<common::Child> {
    let env = |m: &str| {
        vec![
            ("KILL_IN", input.display().to_string()),
            ("KILL_OUT", out.display().to_string()),
            ("KILL_CK", ck.display().to_string()),
            ("KILL_MASTER", m.to_string()),
            ("RUST_LOG", "error".to_string()),
        ]
    };
    if master != "cluster" {
        return vec![common::run_child("stateful_kill_child", &env(master))];
    }
    let hosts = common::free_ports(2).iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    (0..2)
        .map(|i| {
            let mut e = env("local[1]");
            e.push(("EMBER_CLUSTER_HOSTS", hosts.clone()));
            e.push(("EMBER_CLUSTER_PROCESS", i.to_string()));
            e.push(("EMBER_CLUSTER_WORKERS", "2".into()));
            common::run_child("stateful_kill_child", &e)
        })
        .collect()
}

/// Where the accumulator's value after each batch is saved.
fn accumulator_dir(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}-accumulator", out.display()))
}

/// The newest batch whose accumulator value was saved (0: none yet).
fn last_batch(out: &Path) -> u64 {
    std::fs::read_dir(accumulator_dir(out))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("acc-")?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
        .saturating_sub(START)
}

/// The saved outputs: every batch's directory (sorted lines) and accumulator value.
fn outputs(out: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut all = ember::testing::committed_outputs(out);
    for e in std::fs::read_dir(accumulator_dir(out)).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("acc-") {
            all.insert(name, vec![std::fs::read_to_string(e.path()).unwrap()]);
        }
    }
    all
}

fn killed_and_straight_agree(master: &str, kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input);

    for c in start(master, &input, &dir.path().join("a"), &dir.path().join("ck-a")) {
        c.finish();
    }
    let want = outputs(&dir.path().join("a"));
    // Twelve outputs every batch (the accumulator's among them), two every second batch.
    assert_eq!(want.len() as u64, 12 * BATCHES + 2 * (BATCHES / 2), "every output of every batch");

    let (out, ck) = (dir.path().join("b"), dir.path().join("ck-b"));
    let mut r = common::rng(seed);
    let (mut killed, mut after_a_checkpoint) = (0, 0);
    for attempt in 0.. {
        assert!(attempt < 200, "the job did not finish after {attempt} starts");
        let mut children = start(master, &input, &out, &ck);
        if killed < kills {
            // Killed once it ran 1 to 6 batches past where it started (however slow the machine
            // is), at a random moment of the next one.
            let from = last_batch(&out);
            let target = from + (1 + r() % 6) * 1000;
            let watch = ember::clock::Stopwatch::start();
            while last_batch(&out) < target && watch.elapsed() < Duration::from_secs(60) {
                if children.iter_mut().all(|c| c.try_finished().is_some()) {
                    break;
                }
                ember::clock::real_sleep(Duration::from_millis(2));
            }
            ember::clock::real_sleep(Duration::from_millis(r() % 20));
            if children.iter_mut().any(|c| c.try_finished().is_none()) {
                for c in children {
                    c.kill(); // SIGKILL, every process of the job at once
                }
                killed += 1;
                if ck.join("commits").read_dir().is_ok_and(|mut d| d.next().is_some()) {
                    after_a_checkpoint += 1;
                }
                continue;
            }
        }
        for c in children {
            c.finish();
        }
        break;
    }
    let got = outputs(&out);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{master}: the same outputs exist");
    for (name, lines) in &want {
        assert_eq!(&got[name], lines, "{master}: output {name} after {killed} kills");
    }
    assert!(after_a_checkpoint > 0, "{master}: no kill after a checkpoint ({killed} kills)");
}

#[test]
fn every_stateful_operation_survives_sigkill_local_1() {
    killed_and_straight_agree("local[1]", 6, 1);
}

#[test]
fn every_stateful_operation_survives_sigkill_local_3() {
    killed_and_straight_agree("local[3]", 6, 2);
}

#[test]
fn every_stateful_operation_survives_sigkill_two_processes() {
    killed_and_straight_agree("cluster", 6, 3);
}
