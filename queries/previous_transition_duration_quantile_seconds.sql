-- metric: crm_funnel_previous_transition_duration_quantile_seconds
-- type: summary
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_transition_duration_quantile_seconds.
-- labels: pipeline, from_stage, to_stage, window, quantile
-- value: value
-- export: no
WITH r AS (
  SELECT pipeline_index, from_index, previous_quantiles_by_window(w, ms) AS ranks
  FROM transition_durations
  GROUP BY pipeline_index, from_index
)
SELECT t.pipeline, t.from_stage, t.to_stage, w.window, q.quantile,
       CAST(list_at(list_at(r.ranks, w.idx), q.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN transitions t ON t.pipeline_index = r.pipeline_index AND t.from_index = r.from_index
CROSS JOIN windows w
CROSS JOIN quantiles q
WHERE list_at(list_at(r.ranks, w.idx), q.idx) IS NOT NULL
