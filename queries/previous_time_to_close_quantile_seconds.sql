-- metric: crm_funnel_previous_time_to_close_quantile_seconds
-- type: summary
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_time_to_close_quantile_seconds.
-- labels: pipeline, window, quantile
-- value: value
-- export: no
WITH r AS (
  SELECT pipeline_index, previous_quantiles_by_window(w, ms) AS ranks
  FROM close_durations
  GROUP BY pipeline_index
)
SELECT p.pipeline, w.window, q.quantile, CAST(list_at(list_at(r.ranks, w.idx), q.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN pipelines p ON p.pipeline_index = r.pipeline_index
CROSS JOIN windows w
CROSS JOIN quantiles q
WHERE list_at(list_at(r.ranks, w.idx), q.idx) IS NOT NULL
