-- metric: crm_funnel_activities
-- type: gauge
-- help: Activity events within the window by kind (the 20 largest, the rest as other).
-- labels: pipeline, window, activity
-- value: value
WITH ranked AS (
  SELECT pipeline, window, activity, n,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY n DESC, activity) AS rank
  FROM activity_counts
)
SELECT pipeline, window, CASE WHEN rank <= 20 THEN activity ELSE 'other' END AS activity, SUM(n) AS value
FROM ranked
GROUP BY pipeline, window, CASE WHEN rank <= 20 THEN activity ELSE 'other' END
