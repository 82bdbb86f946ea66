-- metric: crm_funnel_time_to_close_seconds
-- type: histogram
-- help: Time from entering the funnel to reaching the won stage, for deals won in the window.
-- labels: pipeline, window
-- value: value
WITH g AS (
  SELECT pipeline_index, w, bucket_of(ms) AS b, COUNT(*) AS n, SUM(ms) AS ms
  FROM close_durations
  GROUP BY pipeline_index, w, bucket_of(ms)
)
SELECT p.pipeline, w.window, bk.le,
       COALESCE(SUM(CASE WHEN g.w <= w.idx AND g.b <= bk.idx THEN g.n END), 0) AS value,
       CAST(COALESCE(SUM(CASE WHEN g.w <= w.idx THEN g.ms END), 0) AS DOUBLE) / 1000.0 AS sum
FROM pipelines p
CROSS JOIN windows w
CROSS JOIN buckets bk
LEFT JOIN g ON g.pipeline_index = p.pipeline_index
GROUP BY p.pipeline, w.window, bk.le
