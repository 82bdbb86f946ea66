-- table: feedback_counts
-- Per pipeline, window, survey and score: the feedback responses with
-- occurred_at in the window (docs/metrics.md §5.3), windows without any left out.
-- Grouped by the pipeline's index and only then named: a join before the
-- grouping costs ten times more.
WITH g AS (
  SELECT f.pipeline_index, w.window, f.survey, f.score, SUM(list_at(f.n, w.idx)) AS n
  FROM feedback_by_set f
  CROSS JOIN windows w
  GROUP BY f.pipeline_index, w.window, f.survey, f.score
  HAVING SUM(list_at(f.n, w.idx)) > 0
)
SELECT p.pipeline, g.window, g.survey, g.score, g.n
FROM g
JOIN pipelines p ON p.pipeline_index = g.pipeline_index
