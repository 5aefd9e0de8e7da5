"""Golden outputs from Apache Spark for ember-sql's tests.

Writes the input batches (clicks.jsonl, orders.jsonl, pages.jsonl: a `batch` field numbers the
batch) and, for every query of queries.sql and every batch, Spark SQL's result rows as
`Row.toString` text, sorted (golden/<query>.txt: `<batch> <row>` lines), plus `show()` text for
a few tables (show_*.txt). The windowed golden file runs the query on batches b-1 and b together.

Run with the Spark peer's Python (pyspark 4.x): `<venv>/bin/python generate.py`.
"""
import json
import os
import random

from pyspark.sql import SparkSession

HERE = os.path.dirname(os.path.abspath(__file__))
BATCHES = 5
# Kept in step with tests/sql.rs.
SHOW_SQL = ("SELECT 'a rather long text that is cut' AS long_text, CAST(1.0E10 AS DOUBLE) AS big, "
            "CAST(NULL AS STRING) AS nothing, CAST(0.001 AS DOUBLE) AS small, 'ab' AS x")  # batch 3 (from 0) is empty
# A schema of every type printSchema() names; tests/sql.rs declares the same in Arrow.
SCHEMA_DDL = ("b BYTE, s SHORT, i INT NOT NULL, l BIGINT, f FLOAT, d DOUBLE, dec DECIMAL(10,2), str STRING, "
              "flag BOOLEAN, bin BINARY, day DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, arr ARRAY<INT>, "
              "st STRUCT<a: INT, b: STRING NOT NULL>, m MAP<STRING, INT>, "
              "nested ARRAY<STRUCT<x: INT, y: ARRAY<STRING>>>")
# One value of each kind show() prints differently; tests/sql.rs writes the same values in
# DataFusion's SQL.
TYPES_SQL = ("SELECT array(1, NULL, 3) AS arr, named_struct('a', 1, 'b', CAST(NULL AS STRING)) AS st, "
             "map('k', 1) AS m, DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05.120' AS ts, "
             "TIMESTAMP '2024-01-02 03:04:05' AS ts0, CAST(1.5 AS DECIMAL(10,2)) AS dec, true AS flag, "
             "X'0A1B' AS bin, CAST(0.1 AS FLOAT) AS f, '' AS empty, '日本語' AS wide, "
             "array(named_struct('x', 1, 'y', array('p', NULL))) AS nested, "
             "CAST(NULL AS ARRAY<INT>) AS nullarr, array() AS emptyarr")

def write_inputs():
    rnd = random.Random(14)
    users = ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"]
    pages = ["home", "cart", "shop", "help", "misc"]
    clicks, orders = [], []
    for b in range(BATCHES):
        if b == 3:
            continue
        for _ in range(rnd.randint(20, 40)):
            clicks.append({"batch": b, "user": rnd.choice(users), "page": rnd.choice(pages),
                           "amount": rnd.randint(1, 24) * 0.25, "qty": rnd.randint(1, 5)})
        for _ in range(rnd.randint(3, 8)):
            orders.append({"batch": b, "user": rnd.choice(users), "page": rnd.choice(pages[:3]),
                           "item": rnd.choice(["pen", "cup", "hat", "mug"]), "price": rnd.randint(1, 40) * 0.5})
    static = [{"page": "home", "category": "main"}, {"page": "cart", "category": "buy"},
              {"page": "shop", "category": "buy"}, {"page": "help", "category": "info"}]
    for name, rows in [("clicks", clicks), ("orders", orders), ("pages", static)]:
        with open(os.path.join(HERE, f"{name}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

def queries():
    name, text, out = None, [], []
    for line in open(os.path.join(HERE, "queries.sql")):
        if line.startswith("-- name:"):
            if name:
                out.append((name, " ".join(text)))
            name, text = line.split(":", 1)[1].strip(), []
        elif line.strip():
            text.append(line.strip())
    out.append((name, " ".join(text)))
    return out

def row_text(r):
    def cell(v):
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return "[" + ",".join(cell(v) for v in r) + "]"

def main():
    write_inputs()
    spark = (SparkSession.builder.master("local[2]").appName("ember-sql-golden")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "3")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    schema_c = "batch INT, user STRING, page STRING, amount DOUBLE, qty BIGINT"
    schema_o = "batch INT, user STRING, page STRING, item STRING, price DOUBLE"
    clicks = spark.read.schema(schema_c).json(os.path.join(HERE, "clicks.jsonl"))
    orders = spark.read.schema(schema_o).json(os.path.join(HERE, "orders.jsonl"))
    pages = spark.read.schema("page STRING, category STRING").json(os.path.join(HERE, "pages.jsonl"))
    pages.createOrReplaceTempView("pages")
    # The functions tests/sql.rs registers as Rust UDFs, here as Python ones.
    spark.udf.register("shout", lambda s: None if s is None else s.upper() + "!", "string")
    spark.udf.register("bucket", lambda a, w: None if a is None or w is None else int(a // w), "bigint")
    for name, sql in queries():
        lines = []
        for b in range(BATCHES):
            clicks.where(f"batch = {b}").drop("batch").createOrReplaceTempView("clicks")
            orders.where(f"batch = {b}").drop("batch").createOrReplaceTempView("orders")
            lines += sorted(f"{b} {row_text(r)}" for r in spark.sql(sql).collect())
        with open(os.path.join(HERE, f"{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    # A query over a window of two batches sliding by one.
    lines = []
    for b in range(BATCHES):
        clicks.where(f"batch IN ({b - 1}, {b})").drop("batch").createOrReplaceTempView("clicks")
        lines += sorted(f"{b} {row_text(r)}" for r in spark.sql(
            "SELECT page, COUNT(DISTINCT user) AS users, SUM(qty) AS items FROM clicks GROUP BY page").collect())
    with open(os.path.join(HERE, "window.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # show() text, exactly as Spark prints it.
    c0 = clicks.where("batch = 0").drop("batch")
    shows = {
        "show_default": c0.orderBy("user", "page", "amount", "qty")._jdf.showString(20, 20, False),
        "show_5_rows": c0.orderBy("user", "page", "amount", "qty")._jdf.showString(5, 20, False),
        "show_untruncated": spark.sql(SHOW_SQL)._jdf.showString(20, 0, False),
        "show_truncated": spark.sql(SHOW_SQL)._jdf.showString(20, 20, False),
        "show_one_row": c0.orderBy("user", "page", "amount", "qty").select("user")._jdf.showString(1, 20, False),
        "show_types": spark.sql(TYPES_SQL)._jdf.showString(20, 20, False),
        "show_types_untruncated": spark.sql(TYPES_SQL)._jdf.showString(20, 0, False),
    }
    shows["print_schema"] = spark.createDataFrame([], SCHEMA_DDL)._jdf.schema().treeString()
    for name, text in shows.items():
        with open(os.path.join(HERE, f"{name}.txt"), "w") as f:
            f.write(text)
    spark.stop()

if __name__ == "__main__":
    main()
