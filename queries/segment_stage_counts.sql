-- table: segment_stage_counts
-- stage_counts restricted to each segment (docs/metrics.md §5.4): per
-- pipeline, stage, window, dimension and segment, the period entries and the
-- cohort deals; zeros included for every segment that exists. The counts of
-- reached_counts by segment set, fanned out to the dimensions (segment_sets).
WITH by_segment AS (
  SELECT g.pipeline_index, g.stage_index, s.dimension, s.segment, w.window,
         SUM(list_at(g.entries, w.idx)) AS entries, SUM(list_at(g.cohort, w.idx)) AS cohort
  FROM reached_counts g
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
