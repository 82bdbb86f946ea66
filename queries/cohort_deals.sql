-- metric: crm_funnel_cohort_deals
-- type: gauge
-- help: Deals that entered the funnel within the window and reached the stage by the evaluation time.
-- labels: pipeline, funnel_stage, window
-- value: cohort
SELECT pipeline, funnel_stage, window, cohort FROM stage_counts
