-- metric: crm_funnel_segment_cohort_deals
-- type: gauge
-- help: Deals of the segment that entered the funnel within the window and reached the stage by the evaluation time.
-- labels: pipeline, funnel_stage, window, dimension, segment
-- value: cohort
SELECT pipeline, funnel_stage, window, dimension, segment, cohort FROM segment_stage_counts
