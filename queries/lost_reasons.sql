-- metric: crm_funnel_lost_reason_deals
-- type: gauge
-- help: Deals lost within the window by lost reason (the 20 largest, the rest as other).
-- labels: pipeline, window, reason
-- value: value
WITH counted AS (
  SELECT d.pipeline, w.window, d.lost_reason AS reason, COUNT(*) AS n
  FROM deals d
  CROSS JOIN windows w
  WHERE d.state = 'lost' AND d.lost_ms > w.start_ms
  GROUP BY d.pipeline, w.window, d.lost_reason
), ranked AS (
  SELECT pipeline, window, reason, n,
         ROW_NUMBER() OVER (PARTITION BY pipeline, window ORDER BY n DESC, reason) AS rank
  FROM counted
)
SELECT pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END AS reason, SUM(n) AS value
FROM ranked
GROUP BY pipeline, window, CASE WHEN rank <= 20 THEN reason ELSE 'other' END
