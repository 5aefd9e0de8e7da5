-- name: select_where
SELECT user, page, amount FROM clicks WHERE amount >= 3.0 AND page <> 'help'
-- name: group_by_aggregates
SELECT page, COUNT(*) AS n, SUM(amount) AS total, MIN(amount) AS lo, MAX(amount) AS hi, AVG(amount) AS mean, SUM(qty) AS items FROM clicks GROUP BY page
-- name: having
SELECT user, COUNT(*) AS n FROM clicks GROUP BY user HAVING COUNT(*) > 2
-- name: count_distinct
SELECT page, COUNT(DISTINCT user) AS users FROM clicks GROUP BY page
-- name: global_aggregate
SELECT COUNT(*) AS n, SUM(qty) AS items, MAX(user) AS last_user FROM clicks
-- name: case_when
SELECT CASE WHEN amount >= 4.0 THEN 'big' WHEN amount >= 2.0 THEN 'mid' ELSE 'small' END AS size, COUNT(*) AS n FROM clicks GROUP BY 1
-- name: join_static_inner
SELECT c.user, c.page, p.category FROM clicks c JOIN pages p ON c.page = p.page
-- name: join_static_left
SELECT c.page, p.category, COUNT(*) AS n FROM clicks c LEFT JOIN pages p ON c.page = p.page GROUP BY c.page, p.category
-- name: join_streams_inner
SELECT c.user, c.page, o.item, o.price FROM clicks c JOIN orders o ON c.user = o.user AND c.page = o.page
-- name: join_streams_left
SELECT c.user, COUNT(o.item) AS bought, SUM(o.price) AS spent FROM clicks c LEFT JOIN orders o ON c.user = o.user GROUP BY c.user
-- name: order_by_limit
SELECT user, page, amount FROM clicks ORDER BY amount DESC, user, page, qty LIMIT 5
-- name: row_number
SELECT user, page, amount, rn FROM (SELECT user, page, amount, ROW_NUMBER() OVER (PARTITION BY page ORDER BY amount DESC, user, qty) AS rn FROM clicks) WHERE rn <= 2

-- name: udf
SELECT loud, b, COUNT(*) AS n
FROM (SELECT shout(CASE WHEN qty > 3 THEN NULL ELSE page END) AS loud, bucket(amount, 2) AS b FROM clicks) t
GROUP BY loud, b
