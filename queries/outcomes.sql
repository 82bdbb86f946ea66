-- table: outcomes
-- Per pipeline and window: deals that reached the won stage in the window,
-- and deals lost (final state) in the window. prev_won and prev_lost: the
-- same at T' = T - W over (T' - W, T'] (docs/metrics.md §5.5), NULL where
-- the window has no previous period. A deal was lost at T' with its loss in
-- that period if its final loss is there, or if a loss there was ended by a
-- later event only after T' (ended_losses).
WITH g AS (
  SELECT o.pipeline_index, w.window, SUM(list_at(o.won, w.idx)) AS won, SUM(list_at(o.lost, w.idx)) AS lost,
         SUM(list_at(o.won, w.prev_idx) - list_at(o.won, w.idx)) AS prev_won,
         SUM(list_at(o.lost, w.prev_idx) - list_at(o.lost, w.idx)) AS prev_lost
  FROM outcome_counts o
  CROSS JOIN windows w
  GROUP BY o.pipeline_index, w.window
),
e AS (
  SELECT l.pipeline_index, w.window, COUNT(*) AS lost
  FROM ended_losses l
  CROSS JOIN windows w
  WHERE l.lost_ms > w.prev_start_ms AND l.lost_ms <= w.start_ms AND l.ended_ms > w.start_ms
  GROUP BY l.pipeline_index, w.window
)
SELECT p.pipeline, w.window,
       COALESCE(g.won, 0) AS won,
       COALESCE(g.lost, 0) AS lost,
       CASE WHEN w.prev_idx IS NOT NULL THEN COALESCE(g.prev_won, 0) END AS prev_won,
       CASE WHEN w.prev_idx IS NOT NULL THEN COALESCE(g.prev_lost, 0) + COALESCE(e.lost, 0) END AS prev_lost
FROM pipelines p
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = p.pipeline_index AND g.window = w.window
LEFT JOIN e ON e.pipeline_index = p.pipeline_index AND e.window = w.window
