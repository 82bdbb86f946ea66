-- metric: crm_funnel_transition_duration_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the step durations of deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window, quantile
-- value: value
-- One pass over the durations. quantiles_by_window gives, per step, the value
-- of every window and quantile at once (list_at(list_at(ranks, w.idx), q.idx)).
WITH r AS (
  SELECT pipeline_index, from_index, quantiles_by_window(w, ms) AS ranks
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
