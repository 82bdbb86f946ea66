-- table: feedback_counts
-- Per pipeline, window, survey and score: the feedback responses with
-- occurred_at in the window (docs/metrics.md §5.3), windows without any left out.
SELECT p.pipeline, w.window, f.survey, f.score, SUM(list_at(f.n, w.idx)) AS n
FROM feedback_by_set f
JOIN pipelines p ON p.pipeline_index = f.pipeline_index
CROSS JOIN windows w
GROUP BY p.pipeline, w.window, f.survey, f.score
HAVING SUM(list_at(f.n, w.idx)) > 0
