-- metric: crm_funnel_segment_net_promoter_score
-- type: gauge
-- help: Net promoter score of the segment within the window: 100 x (promoters - detractors) / NPS responses.
-- labels: pipeline, window, dimension, segment
-- value: value
SELECT pipeline, window, dimension, segment,
       100.0 * CAST(SUM(CASE WHEN band = 'promoter' THEN n WHEN band = 'detractor' THEN -n ELSE 0 END) AS DOUBLE)
         / CAST(SUM(n) AS DOUBLE) AS value
FROM segment_feedback_counts
WHERE survey = 'nps'
GROUP BY pipeline, window, dimension, segment
HAVING SUM(n) > 0
