-- metric: crm_funnel_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of deals won in the window.
-- labels: pipeline, window, quantile
-- value: value
SELECT d.pipeline, l.window, q.quantile,
       CAST(nearest_rank(d.ms, q.numerator, q.denominator) AS DOUBLE) / 1000.0 AS value
FROM close_durations d
JOIN window_levels l ON l.w = d.w
CROSS JOIN quantiles q
GROUP BY d.pipeline, l.window, q.quantile
