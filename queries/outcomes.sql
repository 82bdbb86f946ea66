-- table: outcomes
-- Per pipeline and window: deals that reached the won stage in the window,
-- and deals lost (final state) in the window.
WITH g AS (
  SELECT pipeline_index,
         count_by_window(window_of(won_ms)) AS won,
         count_by_window(CASE WHEN state = 'lost' THEN window_of(lost_ms) END) AS lost
  FROM deals
  GROUP BY pipeline_index
)
SELECT p.pipeline, w.window,
       COALESCE(list_at(g.won, w.idx), 0) AS won,
       COALESCE(list_at(g.lost, w.idx), 0) AS lost
FROM pipelines p
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = p.pipeline_index
