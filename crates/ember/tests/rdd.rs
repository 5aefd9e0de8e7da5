//! Whole-batch (RDD) operations and `transform` against a naive model of each batch, on seeded
//! random batches, under local[1], local[3] and 2 processes x 2 workers. Ordered results
//! (`sort_by`, `sort_by_key`, `zip_with_index`, `take_ordered`, `top`) are compared in order;
//! the rest as sorted lists.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, DStream, StreamingContext};

const BATCHES: usize = 5;

type Pair = (u32, i64);

/// Seeded random batches of numbers and of pairs (xorshift, the same on every call).
fn batches() -> (Vec<Vec<u32>>, Vec<Vec<u32>>, Vec<Vec<Pair>>, Vec<Vec<Pair>>) {
    let mut seed = 0x5eed_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut numbers = |len: u64, range: u64| -> Vec<Vec<u32>> {
        (0..BATCHES).map(|_| (0..next(len)).map(|_| next(range) as u32).collect()).collect()
    };
    let (a, b) = (numbers(80, 40), numbers(30, 40));
    let mut pairs = |len: u64| -> Vec<Vec<Pair>> {
        (0..BATCHES).map(|_| (0..next(len)).map(|_| (next(12) as u32, next(100) as i64 - 50)).collect()).collect()
    };
    let (p, q) = (pairs(60), pairs(20));
    (a, b, p, q)
}

/// One line per operation and batch: `<op> <batch> <result>`.
type Lines = Vec<String>;

fn line<R: std::fmt::Debug>(op: &str, i: usize, r: R) -> String {
    format!("{op} {i} {r:?}")
}

/// An unordered result as Ember's side shows it: each record's text, sorted as text.
fn unordered<T: std::fmt::Debug>(op: &str, i: usize, v: impl IntoIterator<Item = T>) -> String {
    let texts = sorted(v.into_iter().map(|x| format!("{x:?}")).collect());
    format!("{op} {i} [{}]", texts.join(", "))
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// What each operation gives, computed batch by batch from the inputs.
fn model() -> Lines {
    let (a, b, p, q) = batches();
    let mut out = Vec::new();
    for i in 0..BATCHES {
        let (a, b, p, q) = (&a[i], &b[i], &p[i], &q[i]);
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        out.push(unordered("distinct", i, set(a).into_iter().collect::<Vec<_>>()));
        out.push(unordered("subtract", i, sorted(a.iter().filter(|x| !b.contains(x)).copied().collect())));
        out.push(unordered("intersection", i, set(a).intersection(&set(b)).copied().collect::<Vec<_>>()));
        let small: Vec<u32> = b.iter().take(4).copied().collect();
        let cart: Vec<(u32, u32)> = a.iter().take(6).flat_map(|x| small.iter().map(move |y| (*x, *y))).collect();
        out.push(unordered("cartesian", i, sorted(cart)));
        let mut desc = a.clone();
        desc.sort_by(|x, y| y.cmp(x));
        out.push(line("sort_by", i, &desc));
        let mut totals: BTreeMap<u32, i64> = BTreeMap::new();
        for (k, v) in p {
            *totals.entry(*k).or_default() += v;
        }
        out.push(line("sort_by_key", i, totals.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()));
        let ranked: Vec<(u32, u64)> = sorted(a.clone()).into_iter().zip(0u64..).collect();
        out.push(line("zip_with_index", i, ranked));
        out.push(line("zip_with_index (any order)", i, (sorted(a.clone()), (0..a.len() as u64).collect::<Vec<_>>())));
        out.push(line("take_ordered", i, sorted(a.clone()).into_iter().take(5).collect::<Vec<_>>()));
        out.push(line("top", i, desc.iter().take(5).copied().collect::<Vec<_>>()));
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut aggs: BTreeMap<u32, (u64, i64)> = BTreeMap::new();
        for (k, v) in p {
            *counts.entry(*k).or_default() += 1;
            let e = aggs.entry(*k).or_insert((0, i64::MIN));
            *e = (e.0 + 1, e.1.max(*v));
        }
        out.push(unordered("count_by_key", i, counts.into_iter().collect::<Vec<_>>()));
        out.push(unordered("aggregate_by_key", i, aggs.into_iter().collect::<Vec<_>>()));
        out.push(unordered("key_by", i, sorted(a.iter().map(|x| (x % 3, *x)).collect())));
        out.push(unordered("partition_by", i, sorted(p.clone())));
        let mut joined = Vec::new();
        for (k, v) in p {
            for (k2, w) in q {
                if k == k2 {
                    joined.push((*k, (*v, *w)));
                }
            }
        }
        out.push(unordered("transform_with join", i, sorted(joined)));
        out.push(unordered("transform union distinct", i, set(a).union(&set(b)).copied().collect::<Vec<_>>()));
        let within = |v: &Vec<u32>| v.iter().all(|x| a.contains(x)) && v.windows(2).all(|w| w[0] <= w[1]);
        let sampled = sorted(a.clone());
        out.push(line("sample", i, within(&sampled)));
    }
    out
}

/// The same operations, run by Ember on `conf`'s workers.
fn run(conf: Conf) -> Lines {
    let ssc = StreamingContext::new(conf.manual_clock(true), Duration::from_secs(1)).unwrap();
    let (a, b, p, q) = batches();
    let (a, b) = (ssc.queue_stream(a, true), ssc.queue_stream(b, true));
    let (p, q) = (ssc.queue_stream(p, true), ssc.queue_stream(q, true));
    let mut ops: Vec<(&str, bool, ember::BatchCollector<String>)> = Vec::new();
    // Each result as one string per record, in the order the driver gathered them; `ordered`
    // results are compared in that order.
    fn show<T: ember::Data + std::fmt::Debug>(s: &DStream<T>) -> DStream<String> {
        s.map(|x| format!("{x:?}"))
    }
    let mut add = |op, ordered, s: DStream<String>| ops.push((op, ordered, s.collect_batches()));
    add("distinct", false, show(&a.distinct()));
    add("subtract", false, show(&a.subtract(&b)));
    add("intersection", false, show(&a.intersection(&b)));
    let first = |s: &DStream<u32>, n: usize| s.zip_with_index().filter(move |(_, i)| (*i as usize) < n).map(|(x, _)| x);
    add("cartesian", false, show(&first(&a, 6).cartesian(&first(&b, 4))));
    add("sort_by", true, show(&a.sort_by(|x| *x, false)));
    add("sort_by_key", true, show(&p.transform(|r| r.reduce_by_key(|x, y| x + y).sort_by_key(true))));
    add("zip_with_index", true, show(&a.sort_by(|x| *x, true).zip_with_index()));
    add("zip_with_index (any order)", true, show(&a.zip_with_index()));
    add("take_ordered", true, show(&a.take_ordered(5)));
    add("top", true, show(&a.top(5)));
    add("count_by_key", false, show(&p.count_by_key()));
    add(
        "aggregate_by_key",
        false,
        show(&p.aggregate_by_key((0u64, i64::MIN), |(n, m), v| (n + 1, m.max(v)), |x, y| (x.0 + y.0, x.1.max(y.1)))),
    );
    add("key_by", false, show(&a.key_by(|x| x % 3)));
    add("partition_by", false, show(&p.partition_by(2)));
    add("transform_with join", false, show(&p.transform_with(&q, |x, y| x.join(&y))));
    add("transform union distinct", false, show(&a.transform_with(&b, |x, y| x.union(&y).distinct())));
    add("sample", false, show(&a.sample(false, 0.5, 3)));
    ssc.run_batches(BATCHES as u64).unwrap();
    ssc.stop(false).unwrap();
    if ops.iter().all(|(_, _, got)| got.batches().is_empty()) {
        return Vec::new(); // a process other than the driver's collects nothing
    }
    let (a_in, ..) = batches();
    let mut out = Vec::new();
    for (i, input) in a_in.iter().enumerate() {
        for (op, ordered, got) in &ops {
            let b = got.batches().get(i).map(|(_, b)| b.clone()).unwrap_or_else(|| panic!("{op}: batch {i} missing"));
            let r = match *op {
                "zip_with_index (any order)" => {
                    let pairs: Vec<(u32, u64)> = b.iter().map(|s| parse_pair(s)).collect();
                    let indices: Vec<u64> = pairs.iter().map(|(_, n)| *n).collect();
                    format!("{:?}", (sorted(pairs.iter().map(|(x, _)| *x).collect::<Vec<_>>()), indices))
                }
                "sample" => {
                    let got: Vec<u32> = sorted(b.iter().map(|s| s.parse().unwrap()).collect());
                    let within = got.iter().all(|x| input.contains(x)) && got.len() <= input.len();
                    format!("{within:?}")
                }
                _ if *ordered => format!("[{}]", b.join(", ")),
                _ => format!("[{}]", sorted(b).join(", ")),
            };
            out.push(format!("{op} {i} {r}"));
        }
    }
    out.sort_by_key(|l| order_of(l));
    out
}

fn parse_pair(s: &str) -> (u32, u64) {
    let (x, n) = s.trim_matches(|c| c == '(' || c == ')').split_once(", ").unwrap();
    (x.parse().unwrap(), n.parse().unwrap())
}

/// Lines in the model's order: by batch, then by the order the model lists operations.
fn order_of(l: &str) -> (usize, usize) {
    let names = [
        "distinct",
        "subtract",
        "intersection",
        "cartesian",
        "sort_by",
        "sort_by_key",
        "zip_with_index",
        "zip_with_index (any order)",
        "take_ordered",
        "top",
        "count_by_key",
        "aggregate_by_key",
        "key_by",
        "partition_by",
        "transform_with join",
        "transform union distinct",
        "sample",
    ];
    let op = names
        .iter()
        .enumerate()
        .filter(|(_, n)| l.starts_with(&format!("{n} ")))
        .map(|(i, n)| (i, n.len()))
        .max_by_key(|(_, len)| *len)
        .unwrap()
        .0;
    let batch: usize = l[names[op].len() + 1..].split(' ').next().unwrap().parse().unwrap();
    (batch, op)
}

fn expected() -> Lines {
    let mut m = model();
    m.sort_by_key(|l| order_of(l));
    m
}

#[test]
fn every_operation_matches_the_model_under_local_1() {
    let _g = exclusive();
    assert_eq!(run(Conf::new().master("local[1]")), expected());
}

#[test]
fn every_operation_matches_the_model_under_local_3() {
    let _g = exclusive();
    assert_eq!(run(Conf::new().master("local[3]")), expected());
}

#[test]
#[ignore = "run as a child process by `every_operation_matches_the_model_on_two_processes`"]
fn rdd_cluster_child() {
    for l in run(Conf::new()) {
        println!("RDD {l}");
    }
}

#[test]
fn every_operation_matches_the_model_on_two_processes() {
    let outputs = common::run_cluster("rdd_cluster_child", &[]);
    assert_eq!(common::tagged(&outputs[0].stdout, "RDD"), expected(), "process 0 (the driver) collects every batch");
}

#[test]
fn sample_is_seeded_and_near_its_fraction() {
    let input: Vec<Vec<u32>> = vec![(0..4000).collect(), (0..4000).collect()];
    let run = |with_replacement: bool, seed: u64| {
        ember::testing::run_on_batches(input.clone(), |s| s.sample(with_replacement, 0.25, seed))
    };
    let (first, again, other) = (run(false, 1), run(false, 1), run(false, 2));
    assert_eq!(first, again, "the same seed draws the same sample");
    assert_ne!(first, other, "another seed draws another sample");
    assert_ne!(first[0], first[1], "each batch draws anew");
    for b in first.iter().chain(&run(true, 1)) {
        assert!((800..1200).contains(&b.len()), "about a quarter of 4000: {}", b.len());
    }
    let with = run(true, 1);
    assert!(with[0].windows(2).any(|w| w[0] == w[1]), "with replacement, some records are drawn twice");
}

#[test]
fn a_sample_fraction_out_of_range_is_an_error_at_start() {
    for (with_replacement, fraction) in [(false, 1.5), (false, -0.1), (true, -1.0), (true, f64::NAN)] {
        let ssc = ember::testing::manual_context("local[1]");
        ssc.queue_stream(vec![vec![1u32]], true).sample(with_replacement, fraction, 1).print();
        let e = ssc.run_batches(1).unwrap_err().to_string();
        assert!(e.contains("sample") && e.contains("fraction"), "{with_replacement} {fraction}: {e}");
    }
    let ssc = ember::testing::manual_context("local[1]");
    let out = ssc.queue_stream(vec![vec![1u32, 2, 3]], true).sample(true, 2.5, 1).collect_batches();
    ssc.run_batches(1).unwrap();
    assert!(!out.batches()[0].1.is_empty(), "with replacement a fraction above 1 is a mean count");
}
