// Spark MLlib's streaming training throughput, the counterpart of `ember-bench kmeans` and
// `ember-bench sgd`:
// java ... SparkMl kmeans <master> <k> <dim> <points per batch> <batches> <workers>
// java ... SparkMl sgd <master> <iterations> <dim> <points per batch> <batches> <workers>
// Batches of random points (the same generator as Ember's bench) are parallelized and cached
// before the stream starts; the result is points per second of processing time per worker, over
// the batches after the first.
import java.util.ArrayList;
import java.util.LinkedList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.CopyOnWriteArrayList;

import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.mllib.clustering.StreamingKMeans;
import org.apache.spark.mllib.linalg.Vector;
import org.apache.spark.mllib.linalg.Vectors;
import org.apache.spark.mllib.regression.LabeledPoint;
import org.apache.spark.mllib.regression.StreamingLinearRegressionWithSGD;
import org.apache.spark.streaming.Durations;
import org.apache.spark.streaming.api.java.JavaStreamingContext;
import org.apache.spark.streaming.scheduler.StreamingListener;
import org.apache.spark.streaming.scheduler.StreamingListenerBatchCompleted;

public class SparkMl {
    static List<Vector> points(int n, int dim, int k, long seed) {
        long state = seed;
        List<Vector> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            state = state * 6364136223846793005L + 1442695040888963407L;
            int c = (int) (((state >>> 11) / (double) (1L << 53)) * k);
            double[] p = new double[dim];
            for (int d = 0; d < dim; d++) {
                state = state * 6364136223846793005L + 1442695040888963407L;
                p[d] = ((c * 7 + d) % 10) + (state >>> 11) / (double) (1L << 53) - 0.5;
            }
            out.add(Vectors.dense(p));
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0], master = args[1];
        int k = Integer.parseInt(args[2]), dim = Integer.parseInt(args[3]), n = Integer.parseInt(args[4]);
        int batches = Integer.parseInt(args[5]), workers = Integer.parseInt(args[6]);
        boolean sgd = mode.equals("sgd");
        SparkConf conf = new SparkConf().setMaster(master).setAppName("peer-kmeans")
            .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1")
            .set("spark.driver.bindAddress", "127.0.0.1");
        JavaStreamingContext ssc = new JavaStreamingContext(conf, Durations.seconds(2));
        ssc.sparkContext().setLogLevel("ERROR");
        Queue<JavaRDD<Vector>> queue = new LinkedList<>();
        Queue<JavaRDD<LabeledPoint>> labeled = new LinkedList<>();
        for (int b = 0; b <= batches; b++) {
            List<Vector> pts = points(n, dim, sgd ? 10 : k, b + 1);
            if (sgd) {
                List<LabeledPoint> lps = new ArrayList<>(n);
                for (Vector x : pts) {
                    double y = 0;
                    for (int i = 0; i < dim; i++) y += x.apply(i) * (i % 3);
                    lps.add(new LabeledPoint(y, x));
                }
                JavaRDD<LabeledPoint> rdd = ssc.sparkContext().parallelize(lps, workers).cache();
                rdd.count();
                labeled.add(rdd);
            } else {
                JavaRDD<Vector> rdd = ssc.sparkContext().parallelize(pts, workers).cache();
                rdd.count();
                queue.add(rdd);
            }
        }
        List<Long> processing = new CopyOnWriteArrayList<>();
        ssc.addStreamingListener(new StreamingListener() {
            @Override
            public void onBatchCompleted(StreamingListenerBatchCompleted done) {
                if (done.batchInfo().numRecords() >= 0 && done.batchInfo().processingDelay().isDefined()) {
                    processing.add((Long) done.batchInfo().processingDelay().get());
                }
            }
        });
        if (sgd) {
            StreamingLinearRegressionWithSGD model = new StreamingLinearRegressionWithSGD().setNumIterations(k)
                .setStepSize(0.01).setConvergenceTol(0.0).setInitialWeights(Vectors.zeros(dim));
            model.trainOn(ssc.queueStream(labeled, true).dstream());
        } else {
            StreamingKMeans model = new StreamingKMeans().setK(k).setDecayFactor(0.9).setRandomCenters(dim, 0.0, 42);
            model.trainOn(ssc.queueStream(queue, true).dstream());
        }
        ssc.start();
        while (processing.size() < batches + 1) {
            Thread.sleep(50);
        }
        ssc.stop(true, false);
        long ms = 0;
        for (int i = 1; i <= batches; i++) ms += processing.get(i);
        double rate = (double) n * batches / (ms / 1000.0) / workers;
        System.out.printf("spark %s %s, %s %d, dim %d, %d points per batch: %.0f points/s per worker%n",
            sgd ? "StreamingLinearRegressionWithSGD" : "StreamingKMeans", master, sgd ? "iterations" : "k", k, dim, n, rate);
    }
}
