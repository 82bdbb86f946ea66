-- metric: crm_funnel_transition_duration_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the step durations of deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window, quantile
-- value: value
WITH q AS (
  SELECT d.pipeline_index, d.from_index, l.window, q.quantile, nearest_rank(d.ms, q.numerator, q.denominator) AS ms
  FROM transition_durations d
  JOIN window_levels l ON l.w = d.w
  CROSS JOIN quantiles q
  GROUP BY d.pipeline_index, d.from_index, l.window, q.quantile
)
SELECT t.pipeline, t.from_stage, t.to_stage, q.window, q.quantile, CAST(q.ms AS DOUBLE) / 1000.0 AS value
FROM q
JOIN transitions t ON t.pipeline_index = q.pipeline_index AND t.from_index = q.from_index
