-- table: segment_stage_counts
-- stage_counts restricted to each segment (docs/metrics.md §5.4): per
-- pipeline, stage, window, dimension and segment, the period entries and the
-- cohort deals; zeros included for every segment that exists. One pass over
-- `reached` by segment set, then fanned out to the dimensions (segment_sets).
WITH g AS (
  SELECT pipeline_index, stage_index, segment_set,
         count_by_window(window_of(reached_ms)) AS entries,
         count_by_window(window_of(created_ms)) AS cohort
  FROM reached
  GROUP BY pipeline_index, stage_index, segment_set
), by_segment AS (
  SELECT g.pipeline_index, g.stage_index, s.dimension, s.segment, w.window,
         SUM(list_at(g.entries, w.idx)) AS entries, SUM(list_at(g.cohort, w.idx)) AS cohort
  FROM g
  JOIN segment_sets s ON s.segment_set = g.segment_set
  CROSS JOIN windows w
  GROUP BY g.pipeline_index, g.stage_index, s.dimension, s.segment, w.window
)
SELECT st.pipeline, st.stage_index, st.funnel_stage, w.window, sg.dimension, sg.segment,
       COALESCE(b.entries, 0) AS entries, COALESCE(b.cohort, 0) AS cohort
FROM segments sg
JOIN stages st ON st.pipeline_index = sg.pipeline_index
CROSS JOIN windows w
LEFT JOIN by_segment b ON b.pipeline_index = sg.pipeline_index AND b.stage_index = st.stage_index
  AND b.dimension = sg.dimension AND b.segment = sg.segment AND b.window = w.window
