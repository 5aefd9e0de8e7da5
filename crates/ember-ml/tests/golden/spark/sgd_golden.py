"""Golden outputs of Spark MLlib's StreamingLinearRegressionWithSGD and
StreamingLogisticRegressionWithSGD, taken from real Spark (pyspark.mllib).

Run with the Spark peer's venv (it needs numpy), with `PYSPARK_PYTHON` set to that venv's python:
`python sgd_golden.py OUT.json`. Each case trains on seeded random batches of labeled points from
a queue stream (mini-batch fraction 1.0, so every point counts, as in Ember) and records the
weights after every batch; the batches are written beside them.
"""
import math, random, sys
from pyspark.mllib.regression import LabeledPoint, StreamingLinearRegressionWithSGD
from pyspark.mllib.classification import StreamingLogisticRegressionWithSGD

from spark_golden import run_case, spark_context, write


def batches(seed, n, per, truth, logistic, empty=()):
    rnd = random.Random(seed)
    out = []
    for b in range(n):
        if b in empty:
            out.append([])
            continue
        pts = []
        for _ in range(per):
            x = [rnd.uniform(-2, 2) for _ in truth]
            y = sum(a * b for a, b in zip(truth, x))
            if logistic:
                y = 1.0 if rnd.random() < 1 / (1 + math.exp(-y)) else 0.0
            else:
                y += rnd.gauss(0, 0.1)
            pts.append([y, x])
        out.append(pts)
    return out


CASES = [
    dict(name="linear_all_iterations", kind="linear", step=0.1, iters=20, tol=0.0, reg=0.0, initial=[0.0, 0.0, 0.0],
         truth=[1.5, -2.0, 0.5], seed=1, n=4, per=50, empty=[]),
    dict(name="linear_converges_with_empty_batch", kind="linear", step=0.5, iters=50, tol=0.01, reg=0.0, initial=[1.0, 1.0],
         truth=[3.0, -1.0], seed=2, n=5, per=40, empty=[2]),
    dict(name="logistic", kind="logistic", step=1.0, iters=30, tol=0.001, reg=0.0, initial=[0.0, 0.0],
         truth=[2.0, -3.0], seed=3, n=4, per=60, empty=[]),
    dict(name="logistic_l2", kind="logistic", step=1.0, iters=25, tol=0.0, reg=0.1, initial=[0.5, -0.5, 0.0],
         truth=[1.0, 2.0, -1.0], seed=4, n=4, per=60, empty=[]),
]


def main(out_path):
    sc = spark_context("ember-sgd-golden")
    results = []
    for case in CASES:
        data = batches(case["seed"], case["n"], case["per"], case["truth"], case["kind"] == "logistic", set(case["empty"]))
        rdds = [sc.parallelize([LabeledPoint(y, x) for y, x in b], 2) for b in data]
        if case["kind"] == "linear":
            model = StreamingLinearRegressionWithSGD(stepSize=case["step"], numIterations=case["iters"],
                                                     miniBatchFraction=1.0, convergenceTol=case["tol"])
        else:
            model = StreamingLogisticRegressionWithSGD(stepSize=case["step"], numIterations=case["iters"],
                                                       miniBatchFraction=1.0, regParam=case["reg"],
                                                       convergenceTol=case["tol"])
        model.setInitialWeights(case["initial"])

        def read():
            m = model.latestModel()
            return {"weights": list(map(float, m.weights)), "intercept": float(m.intercept)}
        seen = run_case(sc, rdds, model.trainOn, read, case["name"])
        c = {k: v for k, v in case.items() if k not in ("truth", "seed", "per")}
        c["batches"] = data
        c["after_each_batch"] = seen
        results.append(c)
        print(case["name"], "final", seen[-1], flush=True)
    write(out_path, sc, results)


if __name__ == "__main__":
    main(sys.argv[1])
