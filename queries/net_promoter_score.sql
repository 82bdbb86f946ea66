-- metric: crm_funnel_net_promoter_score
-- type: gauge
-- help: Net promoter score within the window: 100 x (promoters 9-10 - detractors 0-6) / NPS responses.
-- labels: pipeline, window
-- value: value
SELECT pipeline, window,
       100.0 * CAST(SUM(CASE WHEN score >= 9 THEN n WHEN score <= 6 THEN -n ELSE 0 END) AS DOUBLE)
         / CAST(SUM(n) AS DOUBLE) AS value
FROM feedback_counts
WHERE survey = 'nps'
GROUP BY pipeline, window
