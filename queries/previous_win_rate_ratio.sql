-- metric: crm_funnel_previous_win_rate_ratio
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_win_rate_ratio.
-- labels: pipeline, window
-- value: value
-- export: no
SELECT pipeline, window, CAST(prev_won AS DOUBLE) / CAST(prev_won + prev_lost AS DOUBLE) AS value
FROM outcomes
WHERE prev_won + prev_lost > 0
