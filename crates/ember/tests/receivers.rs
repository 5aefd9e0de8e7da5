//! The receiver API: supervision (restart after errors, restart requests, the end of input),
//! reported errors, the channel stream.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::operator::{Receiver, ReceiverContext};
use ember::testing::exclusive;
use ember::{Conf, ReceiverInfo, StreamingContext, StreamingListener};

const WAIT: Duration = Duration::from_secs(20);

fn context() -> StreamingContext {
    let conf = Conf::new().master("local[2]").manual_clock(true).set("receiver.restart_delay", "10ms");
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

/// Fails its first two runs, asks for a restart in the third, then stores 0..5 and waits.
struct Flaky {
    runs: Arc<AtomicU32>,
}

impl Receiver<u32> for Flaky {
    fn name(&self) -> String {
        "Flaky".into()
    }

    fn on_start(&mut self, ctx: &ReceiverContext<u32>) -> ember::Result<()> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        match run {
            0 | 1 => Err(ember::Error::Other(format!("broken pipe #{run}"))),
            2 => {
                ctx.report_error("a bad record, skipped");
                ctx.restart("new credentials");
                Ok(())
            }
            _ => {
                ctx.store_block((0..5).collect())?;
                while !ctx.should_return() {
                    ctx.wait_for_stop();
                }
                Ok(())
            }
        }
    }
}

#[derive(Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl StreamingListener for Events {
    fn on_receiver_started(&mut self, i: &ReceiverInfo) {
        self.0.lock().unwrap().push(format!("started {}", i.name));
    }
    fn on_receiver_error(&mut self, i: &ReceiverInfo) {
        self.0.lock().unwrap().push(format!("error {}", i.last_error_message));
    }
    fn on_receiver_stopped(&mut self, i: &ReceiverInfo) {
        self.0.lock().unwrap().push(format!("stopped {}", i.name));
    }
}

#[test]
fn receivers_are_restarted_until_they_work() {
    let _g = exclusive();
    let ssc = context();
    let events = Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(Events(Arc::clone(&events)));
    let runs = Arc::new(AtomicU32::new(0));
    let out = ssc.receiver_stream(Flaky { runs: Arc::clone(&runs) }).collect_batches();
    ssc.start().unwrap();
    assert!(ssc.wait_for_received(5, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let mut got = out.batches()[0].1.clone();
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(runs.load(Ordering::SeqCst), 4, "started four times");
    let ev = events.lock().unwrap().clone();
    assert_eq!(
        ev,
        vec![
            "started Flaky-0",
            "error broken pipe #0",
            "error broken pipe #1",
            "error a bad record, skipped",
            "error restart requested: new credentials",
            "stopped Flaky-0",
        ]
    );
}

#[test]
fn channel_stream_takes_what_the_program_sends() {
    let _g = exclusive();
    let ssc = context();
    let (tx, stream) = ssc.channel_stream::<String>();
    let out = stream.count().collect_batches();
    ssc.start().unwrap();
    for i in 0..1000 {
        tx.send(format!("record {i}")).unwrap();
    }
    assert!(ssc.wait_for_received(1000, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    drop(tx); // every sender gone: the receiver idles until the stop
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(out.batches().into_iter().map(|(_, c)| c[0]).collect::<Vec<_>>(), vec![1000, 0]);
}

/// Stores each value it is given, one `store` at a time, and acknowledges it once stored.
struct Stepped {
    values: Option<std::sync::mpsc::Receiver<u32>>,
    stored: std::sync::mpsc::Sender<u32>,
}

impl Receiver<u32> for Stepped {
    fn on_start(&mut self, ctx: &ReceiverContext<u32>) -> ember::Result<()> {
        let values = self.values.take().ok_or_else(|| ember::Error::Other("runs once".into()))?;
        while !ctx.should_return() {
            if let Ok(v) = values.recv_timeout(Duration::from_millis(20)) {
                ctx.store(v);
                let _ = self.stored.send(v);
            }
        }
        Ok(())
    }
}

#[test]
fn a_receiver_waits_while_its_batch_is_due_and_the_job_is_behind() {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let _g = exclusive();
    // One worker: while it runs batch 1000's output, batch 2000 cannot close.
    let conf = Conf::new().master("local[1]").manual_clock(true).set("flow.max_batches_in_flight", "1");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    let (values, values_rx) = channel();
    let (stored_tx, stored) = channel();
    let (started_tx, started) = channel();
    let (gate, gate_rx) = channel::<()>();
    let gate_rx = Mutex::new(gate_rx);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&batches);
    ssc.receiver_stream(Stepped { values: Some(values_rx), stored: stored_tx }).foreach_partition(
        move |t, mut part: Vec<u32>| {
            part.sort();
            seen.lock().unwrap().push((t.millis(), part));
            if t.millis() == 1000 {
                let _ = started_tx.send(());
                let _ = gate_rx.lock().unwrap().recv_timeout(WAIT);
            }
        },
    );
    ssc.start().unwrap();
    let clock = ssc.manual_clock().unwrap();
    values.send(1).unwrap();
    assert_eq!(stored.recv_timeout(WAIT), Ok(1));
    clock.advance(1000);
    started.recv_timeout(WAIT).expect("batch 1000's output started");
    values.send(2).unwrap();
    assert_eq!(stored.recv_timeout(WAIT), Ok(2), "batch 2000 is open: its records are stored");
    clock.advance(1000);
    values.send(3).unwrap();
    // Batch 2000 is due, but its worker is busy: the receiver must not add to it.
    assert_eq!(stored.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
    gate.send(()).unwrap();
    assert_eq!(stored.recv_timeout(WAIT), Ok(3), "stored once batch 2000 closed");
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got: Vec<(u64, Vec<u32>)> = batches.lock().unwrap().iter().filter(|(_, p)| !p.is_empty()).cloned().collect();
    assert_eq!(got, vec![(1000, vec![1]), (2000, vec![2]), (3000, vec![3])]);
}
