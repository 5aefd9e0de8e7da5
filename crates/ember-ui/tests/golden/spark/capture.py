# How the JSON beside this file was taken: a socket word count on Spark 4.3 (pyspark, the Spark
# peer of scripts/bench.sh) with Spark's UI on, its streaming REST API read after 8 s.
#   SPARK_LOCAL_IP=127.0.0.1 OUT=/tmp/spark-json ~/.cache/ember-peers/venv/bin/python capture.py
# The saved files were then trimmed (Java call sites cut to their first line, lists to 4 items).
import json, os, socket, threading, time, urllib.request
from pyspark import SparkConf, SparkContext
from pyspark.streaming import StreamingContext

out = os.environ.get("OUT", "/tmp/spark-json")
os.makedirs(out, exist_ok=True)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1); port = srv.getsockname()[1]
def feed():
    c, _ = srv.accept()
    for i in range(100000):
        c.sendall(("a b c d %d\n" % (i % 7)).encode())
        if i % 100 == 0: time.sleep(0.01)
    time.sleep(60)
threading.Thread(target=feed, daemon=True).start()

conf = (SparkConf().setMaster("local[3]").setAppName("network_word_count")
        .set("spark.ui.enabled", "true").set("spark.ui.port", "4555")
        .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1"))
sc = SparkContext(conf=conf); sc.setLogLevel("WARN")
ssc = StreamingContext(sc, 1)
lines = ssc.socketTextStream("127.0.0.1", port)
counts = lines.flatMap(lambda l: l.split(" ")).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
counts.pprint(3)
counts.foreachRDD(lambda rdd: rdd.count())
ssc.start()
time.sleep(8)
base = "http://127.0.0.1:4555/api/v1/applications"
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return json.loads(r.read())
apps = get("")
json.dump(apps, open(out + "/applications.json", "w"), indent=2)
app = apps[0]["id"]
s = "/" + app + "/streaming"
for name, path in [("statistics", "/statistics"), ("receivers", "/receivers"), ("receiver_0", "/receivers/0"),
                   ("batches", "/batches"), ("batches_completed", "/batches?status=COMPLETED")]:
    json.dump(get(s + path), open(out + "/" + name + ".json", "w"), indent=2)
b = get(s + "/batches?status=COMPLETED")
bid = b[-1]["batchId"]
json.dump(get(s + "/batches/%d" % bid), open(out + "/batch.json", "w"), indent=2)
ops = get(s + "/batches/%d/operations" % bid)
json.dump(ops, open(out + "/operations.json", "w"), indent=2)
json.dump(get(s + "/batches/%d/operations/%d" % (bid, ops[0]["outputOpId"])), open(out + "/operation.json", "w"), indent=2)
for p, name in [("/metrics/prometheus", "prometheus.txt")]:
    try:
        with urllib.request.urlopen("http://127.0.0.1:4555" + p) as r: open(out + "/" + name, "wb").write(r.read())
    except Exception as e: print("no", p, e)
with urllib.request.urlopen("http://127.0.0.1:4555/streaming/") as r: open(out + "/streaming.html", "wb").write(r.read())
ssc.stop(True, False)
print("saved to", out)
