// The Spark Streaming side of Ember's side-by-side benchmarks: the same workloads as
// `ember-bench socket`, on the same load generator, written against Spark's Java DStream API.
//
//   wordcount  socketTextStream -> flatMap(split " ") -> (w, 1) -> reduceByKey
//   windowed   ... -> reduceByKeyAndWindow(+, -, 10 s, 2 s, filter v > 0)   (checkpoint dir needed)
//   yahoo      JSON ad events -> filter event_type == view -> campaign of the ad (static table)
//              -> (campaign, 1) -> reduceByKeyAndWindow(+, 10 s, 10 s)
//   sql        ... -> foreachRDD: toDF("word"), createOrReplaceTempView, spark.sql(GROUP BY word)
// Each output forces its batch with one job computing (keys, sum of counts), and a listener writes
// one CSV row per completed batch: batch_ms,num_records,sched_delay_ms,proc_delay_ms,total_delay_ms
//
// Arguments: workload port master batchMs seconds csv checkpointDir
import java.io.FileWriter;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.util.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.ForeachPartitionFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.storage.StorageLevel;
import org.apache.spark.streaming.Durations;
import org.apache.spark.streaming.api.java.*;
import org.apache.spark.streaming.scheduler.*;
import scala.Tuple2;

public class SparkPeer {
    static long orMinus(scala.Option<Object> o) { return o.isDefined() ? ((Number) o.get()).longValue() : -1L; }

    static Map<String, String> campaigns() {
        Map<String, String> m = new HashMap<>();
        for (int a = 0; a < 1000; a++) m.put(String.format("ad-%04d", a), String.format("campaign-%03d", a / 10));
        return m;
    }

    public static void main(String[] args) throws Exception {
        String workload = args[0];
        int port = Integer.parseInt(args[1]);
        String master = args[2];
        long batchMs = Long.parseLong(args[3]);
        long seconds = Long.parseLong(args[4]);
        String csv = args[5];
        String checkpoint = args[6];
        long jvmStart = ManagementFactory.getRuntimeMXBean().getStartTime();

        SparkConf conf = new SparkConf().setMaster(master).setAppName("peer-" + workload)
            .set("spark.ui.enabled", "false")
            .set("spark.driver.host", "127.0.0.1")
            .set("spark.driver.bindAddress", "127.0.0.1")
            // SQL's shuffles with as many partitions as cores, not 200 (what a tuned job sets).
            .set("spark.sql.shuffle.partitions", "3");
        JavaStreamingContext ssc = new JavaStreamingContext(conf, Durations.milliseconds(batchMs));
        ssc.sparkContext().setLogLevel("WARN");
        ssc.checkpoint(checkpoint);
        JavaReceiverInputDStream<String> lines = ssc.socketTextStream("127.0.0.1", port, StorageLevel.MEMORY_AND_DISK_SER());

        JavaPairDStream<String, Long> counts = null;
        if (workload.equals("sql")) {
            // The programming guide's "DataFrame and SQL Operations": every batch a DataFrame,
            // a temporary view and spark.sql, its result consumed on the executors.
            lines.flatMap(l -> Arrays.asList(l.split(" ")).iterator()).foreachRDD((JavaRDD<String> rdd) -> {
                SparkSession spark = SparkSession.builder().config(rdd.context().getConf()).getOrCreate();
                Dataset<Row> words = spark.createDataset(rdd.rdd(), Encoders.STRING()).toDF("word");
                words.createOrReplaceTempView("words");
                spark.sql("SELECT word, COUNT(*) AS total FROM words GROUP BY word")
                    .foreachPartition((ForeachPartitionFunction<Row>) it -> { while (it.hasNext()) it.next(); });
            });
        } else if (workload.equals("yahoo")) {
            final Map<String, String> table = campaigns();
            counts = lines.mapPartitions(it -> {
                ObjectMapper mapper = new ObjectMapper();
                List<String> out = new ArrayList<>();
                while (it.hasNext()) {
                    try {
                        JsonNode e = mapper.readTree(it.next());
                        if (e.path("event_type").asText().equals("view")) {
                            String c = table.get(e.path("ad_id").asText());
                            if (c != null) out.add(c);
                        }
                    } catch (Exception bad) { /* skipped, as Ember's workload skips unparsable lines */ }
                }
                return out.iterator();
            }).mapToPair(c -> new Tuple2<>(c, 1L))
              .reduceByKeyAndWindow(Long::sum, Durations.seconds(10), Durations.seconds(10));
        } else {
            JavaPairDStream<String, Long> pairs = lines
                .flatMap(l -> Arrays.asList(l.split(" ")).iterator())
                .mapToPair(w -> new Tuple2<>(w, 1L));
            if (workload.equals("wordcount")) {
                counts = pairs.reduceByKey(Long::sum);
            } else if (workload.equals("windowed")) {
                counts = pairs.reduceByKeyAndWindow(Long::sum, (a, b) -> a - b, Durations.seconds(10), Durations.seconds(2),
                    ssc.sparkContext().defaultParallelism(), kv -> kv._2() > 0);
            } else {
                throw new IllegalArgumentException("unknown workload " + workload);
            }
        }
        if (counts != null) counts.foreachRDD((JavaPairRDD<String, Long> rdd) -> {
            rdd.mapPartitions(it -> {
                long k = 0, s = 0;
                while (it.hasNext()) { k++; s += it.next()._2(); }
                return Collections.singletonList(new long[]{k, s}).iterator();
            }).reduce((x, y) -> new long[]{x[0] + y[0], x[1] + y[1]});
        });

        PrintWriter out = new PrintWriter(new FileWriter(csv));
        out.println("batch_ms,num_records,sched_delay_ms,proc_delay_ms,total_delay_ms");
        out.flush();
        final long[] firstDone = {0};
        ssc.ssc().addStreamingListener(new StreamingListener() {
            @Override public void onBatchCompleted(StreamingListenerBatchCompleted e) {
                BatchInfo b = e.batchInfo();
                synchronized (out) {
                    if (firstDone[0] == 0) firstDone[0] = System.currentTimeMillis();
                    out.printf("%d,%d,%d,%d,%d%n", b.batchTime().milliseconds(), b.numRecords(),
                        orMinus(b.schedulingDelay()), orMinus(b.processingDelay()), orMinus(b.totalDelay()));
                    out.flush();
                }
            }
        });
        ssc.start();
        ssc.awaitTerminationOrTimeout(seconds * 1000);
        synchronized (out) {
            System.out.printf("BENCH start_to_first_batch_done_ms=%d%n", firstDone[0] == 0 ? -1 : firstDone[0] - jvmStart);
            out.close();
        }
        // An overloaded job may not stop cleanly: give it 20 s, then leave.
        Thread stopper = new Thread(() -> ssc.stop(true, false));
        stopper.setDaemon(true);
        stopper.start();
        stopper.join(20000);
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
