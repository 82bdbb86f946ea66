-- metric: crm_funnel_segment_win_rate_ratio
-- type: gauge
-- help: Won deals of the segment over its won plus lost deals in the window.
-- labels: pipeline, window, dimension, segment
-- value: value
SELECT pipeline, window, dimension, segment, CAST(won AS DOUBLE) / CAST(won + lost AS DOUBLE) AS value
FROM segment_outcomes
WHERE won + lost > 0
