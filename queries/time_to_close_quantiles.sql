-- metric: crm_funnel_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of deals won in the window.
-- labels: pipeline, window, quantile
-- value: value
WITH ranked AS (
  SELECT pipeline, window, seconds,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY seconds) AS rank,
         COUNT(*) OVER (PARTITION BY pipeline, window) AS n
  FROM close_durations
)
SELECT r.pipeline, r.window, q.quantile, r.seconds AS value
FROM ranked r
CROSS JOIN quantiles q
WHERE r.rank = (q.numerator * r.n + q.denominator - 1) / q.denominator
