-- metric: crm_funnel_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of deals won in the window.
-- labels: pipeline, window, quantile
-- value: value
WITH r AS (
  SELECT d.pipeline_index, q.quantile, nearest_rank_by_window(d.w, d.ms, q.numerator, q.denominator) AS ranks
  FROM close_durations d
  CROSS JOIN quantiles q
  GROUP BY d.pipeline_index, q.quantile
)
SELECT p.pipeline, w.window, r.quantile, CAST(list_at(r.ranks, w.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN pipelines p ON p.pipeline_index = r.pipeline_index
CROSS JOIN windows w
WHERE list_at(r.ranks, w.idx) IS NOT NULL
