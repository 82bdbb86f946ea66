-- metric: crm_funnel_transition_duration_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the step durations of deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window, quantile
-- value: value
WITH ranked AS (
  SELECT pipeline, window, from_index, seconds,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window, from_index ORDER BY seconds) AS rank,
         COUNT(*) OVER (PARTITION BY pipeline, window, from_index) AS n
  FROM transition_durations
)
SELECT t.pipeline, t.from_stage, t.to_stage, r.window, q.quantile, r.seconds AS value
FROM ranked r
JOIN transitions t ON t.pipeline = r.pipeline AND t.from_index = r.from_index
CROSS JOIN quantiles q
WHERE r.rank = (q.numerator * r.n + q.denominator - 1) / q.denominator
