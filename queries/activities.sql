-- metric: crm_funnel_activities
-- type: gauge
-- help: Activity events within the window by kind (the 20 largest, the rest as other).
-- labels: pipeline, window, activity
-- value: value
WITH counted AS (
  SELECT CAST(e.pipeline AS VARCHAR) AS pipeline, w.window, CAST(e.activity AS VARCHAR) AS activity, COUNT(*) AS n
  FROM events e
  CROSS JOIN windows w
  WHERE e.type = 'activity' AND e.occurred_at_ms > w.start_ms
  GROUP BY CAST(e.pipeline AS VARCHAR), w.window, CAST(e.activity AS VARCHAR)
), ranked AS (
  SELECT pipeline, window, activity, n,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY n DESC, activity) AS rank
  FROM counted
)
SELECT pipeline, window, CASE WHEN rank <= 20 THEN activity ELSE 'other' END AS activity, SUM(n) AS value
FROM ranked
GROUP BY pipeline, window, CASE WHEN rank <= 20 THEN activity ELSE 'other' END
