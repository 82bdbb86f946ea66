-- table: stage_counts
-- Per pipeline, stage and window: deals that first reached the stage in the
-- window (period entries) and deals that entered the funnel in the window and
-- reached the stage by T (cohort). Zeros included: every stage x window.
SELECT s.pipeline, s.stage_index, s.funnel_stage, w.window,
       COUNT(CASE WHEN r.reached_ms > w.start_ms THEN 1 END) AS entries,
       COUNT(CASE WHEN r.created_ms > w.start_ms THEN 1 END) AS cohort
FROM stages s
CROSS JOIN windows w
LEFT JOIN reached r ON r.pipeline = s.pipeline AND r.stage_index = s.stage_index
GROUP BY s.pipeline, s.stage_index, s.funnel_stage, w.window
