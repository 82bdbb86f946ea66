-- table: outcomes
-- Per pipeline and window: deals that reached the won stage in the window,
-- and deals lost (final state) in the window.
WITH g AS (
  SELECT o.pipeline_index, w.window, SUM(list_at(o.won, w.idx)) AS won, SUM(list_at(o.lost, w.idx)) AS lost
  FROM outcome_counts o
  CROSS JOIN windows w
  GROUP BY o.pipeline_index, w.window
)
SELECT p.pipeline, w.window,
       COALESCE(g.won, 0) AS won,
       COALESCE(g.lost, 0) AS lost
FROM pipelines p
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = p.pipeline_index AND g.window = w.window
