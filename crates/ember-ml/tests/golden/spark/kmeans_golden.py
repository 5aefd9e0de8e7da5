"""Golden outputs of Spark MLlib's StreamingKMeans, taken from real Spark (pyspark.mllib).

Run with the Spark peer's venv (it needs numpy), with `PYSPARK_PYTHON` set to that venv's python:
`python kmeans_golden.py OUT.json`. Each case trains on seeded
random batches of points from a queue stream (one batch per second) and records, after every
batch, the model's centers and weights; the batches are written beside them, so the test replays
exactly the same points.
"""
import random, sys
from pyspark.mllib.clustering import StreamingKMeans
from pyspark.mllib.linalg import Vectors

from spark_golden import run_case, spark_context, write


def batches(seed, n_batches, per_batch, dim, blobs, empty=()):
    rnd = random.Random(seed)
    out = []
    for b in range(n_batches):
        if b in empty:
            out.append([])
            continue
        pts = []
        for _ in range(per_batch):
            c = blobs[rnd.randrange(len(blobs))]
            pts.append([c[d] + rnd.gauss(0, 0.5) for d in range(dim)])
        out.append(pts)
    return out


CASES = [
    # name, k, decay (or None), half_life (h, unit) or None, initial centers, initial weights, seed, batches, dim, empty
    dict(name="decay_1", k=2, decay=1.0, centers=[[0.0, 0.0], [1.0, 1.0]], weights=[1.0, 1.0], seed=1,
         n=5, per=40, dim=2, blobs=[[-3.0, -3.0], [4.0, 2.0]], empty=[]),
    dict(name="decay_half_with_empty_batch", k=3, decay=0.5, centers=[[0.0, 0.0, 0.0], [5.0, 0.0, 1.0], [0.0, 5.0, -1.0]],
         weights=[10.0, 2.0, 0.0], seed=2, n=6, per=30, dim=3, blobs=[[1.0, 1.0, 1.0], [6.0, -1.0, 0.0], [-2.0, 6.0, 2.0]], empty=[2]),
    dict(name="half_life_batches", k=2, half_life=(2.0, "batches"), centers=[[0.0], [10.0]], weights=[5.0, 5.0], seed=3,
         n=5, per=25, dim=1, blobs=[[2.0], [7.0]], empty=[]),
    dict(name="half_life_points", k=2, half_life=(50.0, "points"), centers=[[0.0, 1.0], [3.0, -1.0]], weights=[20.0, 20.0], seed=4,
         n=5, per=20, dim=2, blobs=[[1.0, 2.0], [4.0, -2.0]], empty=[]),
    # a = 0: only the newest batch counts; the far center gets no points, its weight falls to 0, it dies and the largest splits
    dict(name="dying_cluster", k=3, decay=0.0, centers=[[0.0, 0.0], [1.0, 0.0], [100.0, 100.0]], weights=[1.0, 1.0, 1.0], seed=5,
         n=4, per=30, dim=2, blobs=[[0.0, 0.0], [2.0, 0.5]], empty=[]),
]


def main(out_path):
    sc = spark_context("ember-kmeans-golden")
    results = []
    for case in CASES:
        data = batches(case["seed"], case["n"], case["per"], case["dim"], case["blobs"], set(case["empty"]))
        rdds = [sc.parallelize([Vectors.dense(p) for p in b], 2) for b in data]
        model = StreamingKMeans(k=case["k"])
        if "half_life" in case:
            model.setHalfLife(*case["half_life"])
        else:
            model.setDecayFactor(case["decay"])
        model.setInitialCenters(case["centers"], case["weights"])

        def read():
            m = model.latestModel()
            return {"centers": [list(map(float, c)) for c in m.clusterCenters], "weights": list(map(float, m.clusterWeights))}
        seen = run_case(sc, rdds, model.trainOn, read, case["name"])
        c = {k: v for k, v in case.items() if k not in ("blobs", "seed", "per")}
        c["decay_factor"] = model._decayFactor
        c["time_unit"] = model._timeUnit
        c["batches"] = data
        c["after_each_batch"] = seen
        results.append(c)
        print(case["name"], "decay", model._decayFactor, model._timeUnit, "final", seen[-1], flush=True)
    write(out_path, sc, results)


if __name__ == "__main__":
    main(sys.argv[1])
