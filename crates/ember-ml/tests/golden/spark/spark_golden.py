"""What the golden scripts share: a local Spark on loopback, one case's stream run until every
batch was recorded, and the output file (one case per line)."""
import json, time
from pyspark import SparkConf, SparkContext
from pyspark.streaming import StreamingContext


def spark_context(app):
    conf = (SparkConf().setMaster("local[2]").setAppName(app)
            .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1")
            .set("spark.driver.bindAddress", "127.0.0.1"))
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    return sc


def run_case(sc, rdds, train, read_model, name):
    """Trains on a queue stream of `rdds` (one per 1 s batch): `train(stream)` declares the
    training, `read_model()` reads the model after each batch. Returns one model per batch."""
    ssc = StreamingContext(sc, 1)
    stream = ssc.queueStream(rdds, oneAtATime=True)
    train(stream)
    seen = []
    stream.foreachRDD(lambda t, rdd: seen.append(read_model()))
    ssc.start()
    deadline = time.time() + 120
    while len(seen) < len(rdds) and time.time() < deadline:
        time.sleep(0.2)
    ssc.stop(stopSparkContext=False, stopGraceFully=False)
    assert len(seen) >= len(rdds), f"{name}: only {len(seen)} batches"
    return seen[: len(rdds)]


def write(out_path, sc, results):
    version = sc.version
    sc.stop()
    with open(out_path, "w") as f:
        f.write('{"spark": %s, "cases": [\n' % json.dumps(version))
        f.write(",\n".join(json.dumps(c) for c in results))
        f.write("\n]}\n")
