//! Streaming k-means, like Spark's `StreamingKMeansExample`: trains on the vectors of the new
//! text files in `<training dir>` (one `[x1,x2,...]` per line) and assigns the labeled points of
//! the new text files in `<test dir>` (one `(y,[x1,x2,...])` per line) to clusters, printing
//! `(label, cluster)` every batch. Move files into the directories while it runs.
//!
//! `streaming_kmeans <training dir> <test dir> <batch seconds> <clusters> <dimensions> [--batches N]`

mod common;

use ember::prelude::*;
use ember_ml::{parse_labeled_points, parse_vectors, StreamingKMeans};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let [training, test, seconds, k, dim] = args.as_slice() else {
        anyhow::bail!(
            "usage: streaming_kmeans <training dir> <test dir> <batch seconds> <clusters> <dimensions> [--batches N]"
        )
    };
    let conf = Conf::new().master("local[2]").app_name("StreamingKMeansExample");
    let ssc = StreamingContext::new(conf, Duration::from_secs(seconds.parse()?))?;
    // Malformed lines are skipped, counted and logged.
    let (training, _) = parse_vectors(&ssc.text_file_stream(training));
    let (test, _) = parse_labeled_points(&ssc.text_file_stream(test));
    let model = StreamingKMeans::new().k(k.parse()?).decay_factor(1.0).random_centers(dim.parse()?, 0.0, 42);
    model.train_on(&training)?;
    model.predict_on_values(&test.map(|p| (p.label, p.features)))?.print();
    common::run(&ssc, batches)
}
