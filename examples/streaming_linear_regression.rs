//! Streaming linear regression, like Spark's `StreamingLinearRegressionExample`: trains on the
//! labeled points of the new text files in `<training dir>` (one `(y,[x1,x2,x3])` per line) and
//! prints `(label, prediction)` for the labeled points of the new text files in `<test dir>`,
//! every second. Three features, initial weights 0, as in Spark's example.
//!
//! `streaming_linear_regression <training dir> <test dir> [--batches N]`

mod common;

use ember::prelude::*;
use ember_ml::{parse_labeled_points, StreamingLinearRegressionWithSGD};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let [training, test] = args.as_slice() else {
        anyhow::bail!("usage: streaming_linear_regression <training dir> <test dir> [--batches N]")
    };
    let conf = Conf::new().master("local[2]").app_name("StreamingLinearRegressionExample");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    // Malformed lines are skipped, counted and logged.
    let (training, _) = parse_labeled_points(&ssc.text_file_stream(training));
    let (test, _) = parse_labeled_points(&ssc.text_file_stream(test));
    let model = StreamingLinearRegressionWithSGD::new().initial_weights(vec![0.0; 3]);
    model.train_on(&training)?;
    model.predict_on_values(&test.map(|p| (p.label, p.features)))?.print();
    common::run(&ssc, batches)
}
