-- metric: crm_funnel_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of deals won in the window.
-- labels: pipeline, window, quantile
-- value: value
WITH q AS (
  SELECT d.pipeline_index, l.window, q.quantile, nearest_rank(d.ms, q.numerator, q.denominator) AS ms
  FROM close_durations d
  JOIN window_levels l ON l.w = d.w
  CROSS JOIN quantiles q
  GROUP BY d.pipeline_index, l.window, q.quantile
)
SELECT p.pipeline, q.window, q.quantile, CAST(q.ms AS DOUBLE) / 1000.0 AS value
FROM q
JOIN pipelines p ON p.pipeline_index = q.pipeline_index
