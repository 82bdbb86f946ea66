-- metric: crm_funnel_time_to_close_seconds
-- type: histogram
-- help: Time from entering the funnel to reaching the won stage, for deals won in the window.
-- labels: pipeline, window
-- value: value
WITH obs AS (
  SELECT p.pipeline, w.window, d.seconds, d.ms
  FROM pipelines p
  CROSS JOIN windows w
  LEFT JOIN close_durations d ON d.pipeline = p.pipeline AND d.window = w.window
)
SELECT o.pipeline, o.window, b.le,
       COUNT(CASE WHEN o.seconds <= b.le_seconds THEN 1 END) AS value,
       CAST(COALESCE(SUM(o.ms), 0) AS DOUBLE) / 1000.0 AS sum
FROM obs o
CROSS JOIN buckets b
GROUP BY o.pipeline, o.window, b.le
