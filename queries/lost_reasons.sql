-- metric: crm_funnel_lost_reason_deals
-- type: gauge
-- help: Deals lost within the window by lost reason (the 20 largest, the rest as other; none or empty as unspecified).
-- labels: pipeline, window, reason
-- value: value
WITH g AS (
  SELECT pipeline_index, lost_reason, count_by_window(window_of(lost_ms)) AS n
  FROM deals
  WHERE state = 'lost'
  GROUP BY pipeline_index, lost_reason
), counted AS (
  SELECT p.pipeline, w.window, COALESCE(NULLIF(CAST(g.lost_reason AS VARCHAR), ''), 'unspecified') AS reason,
         list_at(g.n, w.idx) AS n
  FROM g
  JOIN pipelines p ON p.pipeline_index = g.pipeline_index
  CROSS JOIN windows w
  WHERE list_at(g.n, w.idx) > 0
), ranked AS (
  -- "other" and "unspecified" are never ranked: each is its own series (docs/metrics.md §7).
  SELECT pipeline, window, reason, n,
         reason IN ('other', 'unspecified') AS kept_apart,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window, reason IN ('other', 'unspecified') ORDER BY n DESC, reason) AS rank
  FROM counted
), named AS (
  SELECT pipeline, window, CASE WHEN kept_apart OR rank <= 20 THEN reason ELSE 'other' END AS reason, n
  FROM ranked
)
SELECT pipeline, window, reason, SUM(n) AS value
FROM named
GROUP BY pipeline, window, reason
