-- table: stage_counts
-- Per pipeline, stage and window: deals that first reached the stage in the
-- window (period entries) and deals that entered the funnel in the window and
-- reached the stage by T (cohort). Zeros included: every stage x window.
-- One pass over `reached`, grouped by the smallest windows of R(d, i) and C(d)
-- (rows in no window count nowhere and are left out first).
WITH g AS (
  SELECT pipeline_index, stage_index, window_of(reached_ms) AS wr, window_of(created_ms) AS wc, COUNT(*) AS n
  FROM reached
  WHERE window_of(reached_ms) IS NOT NULL OR window_of(created_ms) IS NOT NULL
  GROUP BY pipeline_index, stage_index, window_of(reached_ms), window_of(created_ms)
)
SELECT s.pipeline, s.stage_index, s.funnel_stage, w.window,
       COALESCE(SUM(CASE WHEN g.wr <= w.idx THEN g.n END), 0) AS entries,
       COALESCE(SUM(CASE WHEN g.wc <= w.idx THEN g.n END), 0) AS cohort
FROM stages s
CROSS JOIN windows w
LEFT JOIN g ON g.pipeline_index = s.pipeline_index AND g.stage_index = s.stage_index
GROUP BY s.pipeline, s.stage_index, s.funnel_stage, w.window
