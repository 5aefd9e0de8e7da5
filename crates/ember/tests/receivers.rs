//! The receiver API: supervision (restart after errors, restart requests, the end of input),
//! reported errors, the channel stream.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::source::receiver::{Receiver, ReceiverContext};
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

    fn on_start(&mut self, ctx: &ReceiverContext<u32>) -> Result<(), String> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        match run {
            0 | 1 => Err(format!("broken pipe #{run}")),
            2 => {
                ctx.report_error("a bad record, skipped");
                ctx.restart("new credentials");
                Ok(())
            }
            _ => {
                ctx.store_block((0..5).collect()).map_err(|e| e.to_string())?;
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
