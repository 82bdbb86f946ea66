-- table: segment_feedback_counts
-- Per pipeline, window, dimension, segment, survey and band (docs/metrics.md
-- §5.4): the feedback responses within the window, a response falling in its
-- deal's segment; every band of both surveys for every segment that exists.
WITH by_segment AS (
  SELECT g.pipeline_index, s.dimension, s.segment, w.window, g.survey, b.band, SUM(list_at(g.n, w.idx)) AS n
  FROM feedback_by_set g
  JOIN bands b ON b.survey = g.survey AND g.score >= b.low AND g.score <= b.high
  JOIN segment_sets s ON s.segment_set = g.segment_set
  CROSS JOIN windows w
  GROUP BY g.pipeline_index, s.dimension, s.segment, w.window, g.survey, b.band
)
SELECT sg.pipeline, w.window, sg.dimension, sg.segment, b.survey, b.band, COALESCE(x.n, 0) AS n
FROM segments sg
CROSS JOIN windows w
CROSS JOIN bands b
LEFT JOIN by_segment x ON x.pipeline_index = sg.pipeline_index AND x.dimension = sg.dimension
  AND x.segment = sg.segment AND x.window = w.window AND x.survey = b.survey AND x.band = b.band
