-- metric: crm_funnel_win_rate_ratio
-- type: gauge
-- help: Won deals over won plus lost deals in the window.
-- labels: pipeline, window
-- value: value
SELECT pipeline, window, CAST(won AS DOUBLE) / CAST(won + lost AS DOUBLE) AS value
FROM outcomes
WHERE won + lost > 0
