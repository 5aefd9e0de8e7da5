//! Feeds batches through a queue, like Spark's `QueueStream`: each batch holds 1..=1000, and the
//! job counts the numbers by their last digit. Runs on the manual clock, so it finishes at once.

use ember::prelude::*;

fn main() -> anyhow::Result<()> {
    let conf = Conf::new().master("local[2]").app_name("QueueStream").manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let (numbers, queue) = ssc.queue_stream_with_handle(Vec::<Vec<u64>>::new(), true);
    let by_digit = numbers.map(|x| (x % 10, 1u64)).reduce_by_key(|a, b| a + b);
    by_digit.print();
    for _ in 0..5 {
        queue.push((1..=1000).collect());
        ssc.run_batches(1)?;
    }
    ssc.stop(false)?;
    Ok(())
}
