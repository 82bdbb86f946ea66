-- metric: crm_funnel_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of deals won in the window.
-- labels: pipeline, window, quantile
-- value: value
WITH r AS (
  SELECT pipeline_index, quantiles_by_window(w, ms) AS ranks
  FROM close_durations
  GROUP BY pipeline_index
)
SELECT p.pipeline, w.window, q.quantile, CAST(list_at(list_at(r.ranks, w.idx), q.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN pipelines p ON p.pipeline_index = r.pipeline_index
CROSS JOIN windows w
CROSS JOIN quantiles q
WHERE list_at(list_at(r.ranks, w.idx), q.idx) IS NOT NULL
