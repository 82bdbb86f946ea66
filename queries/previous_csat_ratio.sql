-- metric: crm_funnel_previous_csat_ratio
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_csat_ratio.
-- labels: pipeline, window
-- value: value
-- export: no
SELECT pipeline, window,
       CAST(SUM(CASE WHEN score >= 4 THEN n ELSE 0 END) AS DOUBLE) / CAST(SUM(n) AS DOUBLE) AS value
FROM previous_feedback_counts
WHERE survey = 'csat'
GROUP BY pipeline, window
