-- metric: crm_funnel_transition_duration_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the step durations of deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window, quantile
-- value: value
-- One pass over the durations. nearest_rank_by_window gives, per step and
-- quantile, the value of every window at once (element idx of the list).
WITH r AS (
  SELECT d.pipeline_index, d.from_index, q.quantile,
         nearest_rank_by_window(d.w, d.ms, q.numerator, q.denominator) AS ranks
  FROM transition_durations d
  CROSS JOIN quantiles q
  GROUP BY d.pipeline_index, d.from_index, q.quantile
)
SELECT t.pipeline, t.from_stage, t.to_stage, w.window, r.quantile,
       CAST(list_at(r.ranks, w.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN transitions t ON t.pipeline_index = r.pipeline_index AND t.from_index = r.from_index
CROSS JOIN windows w
WHERE list_at(r.ranks, w.idx) IS NOT NULL
