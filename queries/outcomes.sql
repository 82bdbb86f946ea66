-- table: outcomes
-- Per pipeline and window: deals that reached the won stage in the window,
-- and deals lost (final state) in the window.
WITH g AS (
  SELECT pipeline_index, window_of(won_ms) AS ww, CASE WHEN state = 'lost' THEN window_of(lost_ms) END AS wl, COUNT(*) AS n
  FROM deals
  WHERE window_of(won_ms) IS NOT NULL OR (state = 'lost' AND window_of(lost_ms) IS NOT NULL)
  GROUP BY pipeline_index, window_of(won_ms), CASE WHEN state = 'lost' THEN window_of(lost_ms) END
)
SELECT p.pipeline, w.window,
       COALESCE(SUM(CASE WHEN g.ww <= w.idx THEN g.n END), 0) AS won,
       COALESCE(SUM(CASE WHEN g.wl <= w.idx THEN g.n END), 0) AS lost
FROM pipelines p
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = p.pipeline_index
GROUP BY p.pipeline, w.window
