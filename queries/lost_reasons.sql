-- metric: crm_funnel_lost_reason_deals
-- type: gauge
-- help: Deals lost within the window by lost reason (the 20 largest, the rest as other).
-- labels: pipeline, window, reason
-- value: value
WITH g AS (
  SELECT pipeline_index, window_of(lost_ms) AS w, lost_reason AS reason, COUNT(*) AS n
  FROM deals
  WHERE state = 'lost' AND window_of(lost_ms) IS NOT NULL
  GROUP BY pipeline_index, window_of(lost_ms), lost_reason
), counted AS (
  SELECT p.pipeline, l.window, CAST(g.reason AS VARCHAR) AS reason, SUM(g.n) AS n
  FROM g
  JOIN pipelines p ON p.pipeline_index = g.pipeline_index
  JOIN window_levels l ON l.w = g.w
  GROUP BY p.pipeline, l.window, CAST(g.reason AS VARCHAR)
), ranked AS (
  SELECT pipeline, window, reason, n,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY n DESC, reason) AS rank
  FROM counted
)
SELECT pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END AS reason, SUM(n) AS value
FROM ranked
GROUP BY pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END
