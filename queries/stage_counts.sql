-- table: stage_counts
-- Per pipeline, stage and window: deals that first reached the stage in the
-- window (period entries) and deals that entered the funnel in the window and
-- reached the stage by T (cohort). Zeros included: every stage x window.
-- One pass over `reached`: each row counts under the smallest window of R(d, i)
-- and of C(d) (count_by_window), summed into every wider one.
WITH g AS (
  SELECT pipeline_index, stage_index,
         count_by_window(window_of(reached_ms)) AS entries,
         count_by_window(window_of(created_ms)) AS cohort
  FROM reached
  GROUP BY pipeline_index, stage_index
)
SELECT s.pipeline, s.stage_index, s.funnel_stage, w.window,
       COALESCE(list_at(g.entries, w.idx), 0) AS entries,
       COALESCE(list_at(g.cohort, w.idx), 0) AS cohort
FROM stages s
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = s.pipeline_index AND g.stage_index = s.stage_index
