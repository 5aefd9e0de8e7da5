//! Read throughput of the Kinesis and ZeroMQ inputs, each beside its client alone on the same
//! records.
//!
//! `ember-bench kinesis --endpoint URL [--records N] [--shards S]` fills a new stream of S shards
//! with N lines, then reads it with the client alone (GetRecords shard after shard) and with an
//! Ember job (a direct stream, `local[2]`); prints records/s in all and per shard.
//! `ember-bench zeromq [--messages N] [--wal 0|1]` pushes N messages from a PUSH socket in this
//! process to a PULL socket alone and to Ember's PULL receiver; prints messages/s.

use std::time::Duration;

use anyhow::Context;
use ember::clock::Stopwatch;
use ember::prelude::*;
use ember::{GeneratedText, LineGenerator};
use ember_kinesis::{Credentials, InitialPosition, KinesisClient, KinesisSpec};
use serde_json::json;

use crate::arg;

fn text_lines(n: usize) -> Vec<String> {
    let text = GeneratedText { lines_per_second: 1, words_per_line: 10, vocabulary: 1000, skew: 1.0, seed: 5 };
    let mut g = LineGenerator::new(&text, 0);
    (0..n).map(|_| g.next_line()).collect()
}

fn value(args: &[String], name: &str) -> anyhow::Result<String> {
    let i = args.iter().position(|a| a == name).with_context(|| format!("{name} is required"))?;
    args.get(i + 1).cloned().with_context(|| format!("{name} needs a value"))
}

pub fn kinesis(args: &[String]) -> anyhow::Result<()> {
    let endpoint = value(args, "--endpoint")?;
    let records = arg(args, "--records", 100_000)? as usize;
    let shards = arg(args, "--shards", 2)? as usize;
    let creds = Credentials::from_env().unwrap_or_else(|| Credentials::new("bench", "bench"));
    let client = KinesisClient::new(Some(&endpoint), "us-east-1", creds.clone()).map_err(anyhow::Error::msg)?;
    let stream = format!("ember-bench-{}", std::process::id());
    client.create_stream(&stream, shards as u32)?;
    let keyed: Vec<(String, Vec<u8>)> =
        text_lines(records).into_iter().enumerate().map(|(i, l)| (format!("k{i}"), l.into_bytes())).collect();
    let watch = Stopwatch::start();
    client.put_records(&stream, &keyed)?;
    println!(
        "put {records} records in {:.2} s ({:.0} records/s)",
        watch.elapsed().as_secs_f64(),
        records as f64 / watch.elapsed().as_secs_f64()
    );

    // The client alone: every shard from TRIM_HORIZON to its tip, 10,000 records per call.
    let watch = Stopwatch::start();
    let listed = client.call("ListShards", &json!({ "StreamName": stream }))?;
    let mut read = 0usize;
    for s in listed["Shards"].as_array().context("no shards")? {
        let it = client.call(
            "GetShardIterator",
            &json!({ "StreamName": stream, "ShardId": s["ShardId"], "ShardIteratorType": "TRIM_HORIZON" }),
        )?;
        let mut it = it["ShardIterator"].as_str().map(str::to_owned);
        while let Some(i) = it {
            let v = client.call_retrying(
                "GetRecords",
                &json!({ "ShardIterator": i, "Limit": 10_000 }),
                Duration::from_secs(60),
            )?;
            let n = v["Records"].as_array().map_or(0, Vec::len);
            read += n;
            if n == 0 && v["MillisBehindLatest"].as_u64() == Some(0) {
                break;
            }
            it = v["NextShardIterator"].as_str().map(str::to_owned);
        }
    }
    let alone = watch.elapsed().as_secs_f64();
    anyhow::ensure!(read == records, "the client read {read} of {records} records");

    // Ember: a direct stream counting records, batch after batch on the manual clock.
    let ssc = StreamingContext::new(Conf::new().master("local[2]").manual_clock(true), Duration::from_secs(1))?;
    let k = ember_kinesis::create_stream(
        &ssc,
        KinesisSpec::new(stream.clone(), "us-east-1")
            .endpoint_url(endpoint.clone())
            .credentials(creds)
            .initial_position(InitialPosition::TrimHorizon),
    );
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = std::sync::Arc::clone(&counted);
    k.stream().count().foreach_batch(move |_, n| {
        sink.fetch_add(n.iter().sum::<u64>(), std::sync::atomic::Ordering::Relaxed);
    });
    let watch = Stopwatch::start();
    while counted.load(std::sync::atomic::Ordering::Relaxed) < records as u64 {
        anyhow::ensure!(watch.elapsed() < Duration::from_secs(600), "Ember did not read the stream in 10 minutes");
        ssc.run_batches(1)?;
    }
    let engine = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    let _ = client.call("DeleteStream", &json!({ "StreamName": stream }));
    let per = |secs: f64| records as f64 / secs;
    println!("client alone:  {:>10.0} records/s  ({:>8.0} per shard)", per(alone), per(alone) / shards as f64);
    println!("ember local[2]:{:>10.0} records/s  ({:>8.0} per shard)", per(engine), per(engine) / shards as f64);
    Ok(())
}

pub fn zeromq(args: &[String]) -> anyhow::Result<()> {
    use zeromq::{PullSocket, Socket, SocketRecv};
    let messages = arg(args, "--messages", 1_000_000)? as usize;
    let wanted = messages;
    let wal = arg(args, "--wal", 0)?;
    let lines = text_lines(1000);
    let url = spawn_pusher(lines.clone())?;
    // A PULL socket alone.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let alone = rt.block_on(async {
        let mut pull = PullSocket::new();
        pull.connect(&url).await?;
        let watch = Stopwatch::start();
        for _ in 0..messages {
            pull.recv().await?;
        }
        let secs = watch.elapsed().as_secs_f64();
        pull.close().await;
        Ok::<f64, zeromq::ZmqError>(secs)
    })?;
    // Ember's receiver.
    let dir = tempfile::tempdir()?;
    let conf = Conf::new()
        .master("local[2]")
        .manual_clock(true)
        .set("receiver.write_ahead_log.enable", if wal == 1 { "true" } else { "false" });
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    if wal == 1 {
        ssc.checkpoint(dir.path());
    }
    let z = ember_zeromq::zeromq_stream(&ssc, ember_zeromq::ZmqSpec::pull(spawn_pusher(lines)?));
    z.stream().count().foreach_batch(|_, _| {});
    ssc.start()?;
    let watch = Stopwatch::start();
    let mut taken = 0u64;
    while taken < messages as u64 {
        ssc.wait_for_received((taken + 100_000).min(messages as u64), Duration::from_secs(1))?;
        ssc.run_batches(1)?;
        taken = ssc.received_records();
        anyhow::ensure!(watch.elapsed() < Duration::from_secs(600), "Ember did not receive the messages in 10 minutes");
    }
    let messages = taken as usize;
    let engine = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    println!("PULL socket alone:           {:>10.0} messages/s", wanted as f64 / alone);
    println!("ember receiver (wal={wal}):      {:>10.0} messages/s", messages as f64 / engine);
    Ok(())
}

/// A PUSH socket bound on a free loopback port, on a thread of its own, sending `lines` round and
/// round to whoever connects; returns its URL. One per measurement: a PUSH socket keeps sending
/// to a puller that closed until it notices, and would stall the next measurement.
fn spawn_pusher(lines: Vec<String>) -> anyhow::Result<String> {
    use zeromq::{PushSocket, Socket, SocketSend, ZmqMessage};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bind_url = url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let mut push = PushSocket::new();
            push.bind(&bind_url).await.expect("bind");
            let mut i = 0;
            loop {
                let m: ZmqMessage = lines[i % lines.len()].clone().into();
                match push.send(m).await {
                    Ok(()) => {
                        i += 1;
                        if i % 1000 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    // No puller connected yet: wait for one.
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        });
    });
    Ok(url)
}
