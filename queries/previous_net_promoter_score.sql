-- metric: crm_funnel_previous_net_promoter_score
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_net_promoter_score.
-- labels: pipeline, window
-- value: value
-- export: no
SELECT pipeline, window,
       100.0 * CAST(SUM(CASE WHEN score >= 9 THEN n WHEN score <= 6 THEN -n ELSE 0 END) AS DOUBLE)
         / CAST(SUM(n) AS DOUBLE) AS value
FROM previous_feedback_counts
WHERE survey = 'nps'
GROUP BY pipeline, window
