-- table: previous_feedback_counts
-- Per pipeline, window, survey and score: the feedback responses of the
-- window's previous period (T - 2W, T - W] (docs/metrics.md §5.5), scores
-- without any left out, windows without a previous period too. Grouped by
-- the pipeline's index and only then named, as in feedback_counts.
WITH g AS (
  SELECT f.pipeline_index, w.window, f.survey, f.score, SUM(list_at(f.n, w.prev_idx) - list_at(f.n, w.idx)) AS n
  FROM feedback_by_set f
  CROSS JOIN windows w
  WHERE w.prev_idx IS NOT NULL
  GROUP BY f.pipeline_index, w.window, f.survey, f.score
  HAVING SUM(list_at(f.n, w.prev_idx) - list_at(f.n, w.idx)) > 0
)
SELECT p.pipeline, g.window, g.survey, g.score, g.n
FROM g
JOIN pipelines p ON p.pipeline_index = g.pipeline_index
