-- table: stage_counts
-- Per pipeline, stage and window: deals that first reached the stage in the
-- window (period entries) and deals that entered the funnel in the window and
-- reached the stage by T (cohort). Zeros included: every stage x window.
-- From reached_counts: each deal counts under the smallest window of R(d, i)
-- and of C(d), summed into every wider one. prev_entries: the entries of the
-- previous period (T - 2W, T - W] (docs/metrics.md §5.5), NULL where the
-- window has none (2W beyond the retention).
WITH g AS (
  SELECT r.pipeline_index, r.stage_index, w.window,
         SUM(list_at(r.entries, w.idx)) AS entries, SUM(list_at(r.cohort, w.idx)) AS cohort,
         SUM(list_at(r.entries, w.prev_idx) - list_at(r.entries, w.idx)) AS prev_entries
  FROM reached_counts r
  CROSS JOIN windows w
  GROUP BY r.pipeline_index, r.stage_index, w.window
)
SELECT s.pipeline, s.stage_index, s.funnel_stage, w.window,
       COALESCE(g.entries, 0) AS entries,
       COALESCE(g.cohort, 0) AS cohort,
       CASE WHEN w.prev_idx IS NOT NULL THEN COALESCE(g.prev_entries, 0) END AS prev_entries
FROM stages s
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = s.pipeline_index AND g.stage_index = s.stage_index AND g.window = w.window
