-- metric: crm_funnel_lost_reason_deals
-- type: gauge
-- help: Deals lost within the window by lost reason (the 20 largest, the rest as other).
-- labels: pipeline, window, reason
-- value: value
WITH g AS (
  SELECT pipeline_index, lost_reason, count_by_window(window_of(lost_ms)) AS n
  FROM deals
  WHERE state = 'lost'
  GROUP BY pipeline_index, lost_reason
), counted AS (
  SELECT p.pipeline, w.window, CAST(g.lost_reason AS VARCHAR) AS reason, list_at(g.n, w.idx) AS n
  FROM g
  JOIN pipelines p ON p.pipeline_index = g.pipeline_index
  CROSS JOIN windows w
  WHERE list_at(g.n, w.idx) > 0
), ranked AS (
  SELECT pipeline, window, reason, n,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY n DESC, reason) AS rank
  FROM counted
)
SELECT pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END AS reason, SUM(n) AS value
FROM ranked
GROUP BY pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END
