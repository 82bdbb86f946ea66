-- metric: crm_funnel_segment_csat_ratio
-- type: gauge
-- help: Share of the CSAT responses of the segment within the window that are satisfied (score 4 or 5).
-- labels: pipeline, window, dimension, segment
-- value: value
SELECT pipeline, window, dimension, segment,
       CAST(SUM(CASE WHEN band = 'satisfied' THEN n ELSE 0 END) AS DOUBLE) / CAST(SUM(n) AS DOUBLE) AS value
FROM segment_feedback_counts
WHERE survey = 'csat'
GROUP BY pipeline, window, dimension, segment
HAVING SUM(n) > 0
