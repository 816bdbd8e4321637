-- sqlite3 workload: a recursive CTE walking Collatz sequences for every start
-- value below @N@ (the harness substitutes @N@), then aggregating. Row
-- generation, expression evaluation and a GROUP BY, all in the VDBE.
WITH RECURSIVE
  s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < @N@),
  c(start, x, steps) AS (
    SELECT v, v, 0 FROM s
    UNION ALL
    SELECT start, CASE WHEN x % 2 = 0 THEN x / 2 ELSE 3 * x + 1 END, steps + 1
    FROM c WHERE x > 1
  )
SELECT count(*), max(steps), sum(x % 7), (SELECT start FROM c GROUP BY start ORDER BY max(steps) DESC, start LIMIT 1)
FROM c;
