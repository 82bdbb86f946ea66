-- metric: crm_funnel_csat_ratio
-- type: gauge
-- help: Share of CSAT responses within the window that are satisfied (score 4 or 5).
-- labels: pipeline, window
-- value: value
SELECT pipeline, window,
       CAST(SUM(CASE WHEN score >= 4 THEN n ELSE 0 END) AS DOUBLE) / CAST(SUM(n) AS DOUBLE) AS value
FROM feedback_counts
WHERE survey = 'csat'
GROUP BY pipeline, window
