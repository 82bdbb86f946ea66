-- table: feedback_counts
-- Per pipeline, window, survey and score: the feedback responses with
-- occurred_at in the window (docs/metrics.md §5.3), windows without any left out.
WITH g AS (
  SELECT pipeline_index, CAST(survey AS VARCHAR) AS survey, score,
         count_by_window(window_of(occurred_at_ms)) AS n
  FROM feedback
  GROUP BY pipeline_index, CAST(survey AS VARCHAR), score
)
SELECT p.pipeline, w.window, g.survey, g.score, list_at(g.n, w.idx) AS n
FROM g
JOIN pipelines p ON p.pipeline_index = g.pipeline_index
CROSS JOIN windows w
WHERE list_at(g.n, w.idx) > 0
