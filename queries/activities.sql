-- metric: crm_funnel_activities
-- type: gauge
-- help: Activity events within the window by kind (the 20 largest, the rest as other).
-- labels: pipeline, window, activity
-- value: value
WITH ranked AS (
  -- "other" and "unspecified" are never ranked: each is its own series (docs/metrics.md §7).
  SELECT pipeline, window, activity, n,
         activity IN ('other', 'unspecified') AS kept_apart,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window, activity IN ('other', 'unspecified') ORDER BY n DESC, activity) AS rank
  FROM activity_counts
), named AS (
  SELECT pipeline, window, CASE WHEN kept_apart OR rank <= 20 THEN activity ELSE 'other' END AS activity, n
  FROM ranked
)
SELECT pipeline, window, activity, SUM(n) AS value
FROM named
GROUP BY pipeline, window, activity
