-- table: segment_outcomes
-- outcomes restricted to each segment (docs/metrics.md §5.4): per pipeline,
-- window, dimension and segment, the deals won and lost within the window;
-- zeros included for every segment that exists.
WITH by_segment AS (
  SELECT g.pipeline_index, s.dimension, s.segment, w.window,
         SUM(list_at(g.won, w.idx)) AS won, SUM(list_at(g.lost, w.idx)) AS lost
  FROM outcome_counts g
  JOIN segment_sets s ON s.segment_set = g.segment_set
  CROSS JOIN windows w
  GROUP BY g.pipeline_index, s.dimension, s.segment, w.window
)
SELECT sg.pipeline, w.window, sg.dimension, sg.segment,
       COALESCE(b.won, 0) AS won, COALESCE(b.lost, 0) AS lost
FROM segments sg
CROSS JOIN windows w
LEFT JOIN by_segment b ON b.pipeline_index = sg.pipeline_index AND b.dimension = sg.dimension
  AND b.segment = sg.segment AND b.window = w.window
