-- metric: crm_funnel_segment_stage_entries
-- type: gauge
-- help: Deals of the segment that first reached the stage within the window (period flow count).
-- labels: pipeline, funnel_stage, window, dimension, segment
-- value: entries
SELECT pipeline, funnel_stage, window, dimension, segment, entries FROM segment_stage_counts
