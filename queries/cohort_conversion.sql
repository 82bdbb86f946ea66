-- metric: crm_funnel_cohort_conversion_ratio
-- type: gauge
-- help: Cohort deals that reached the next stage over cohort deals that reached this stage.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
SELECT a.pipeline, a.funnel_stage AS from_stage, b.funnel_stage AS to_stage, a.window,
       CAST(b.cohort AS DOUBLE) / CAST(a.cohort AS DOUBLE) AS value
FROM stage_counts a
JOIN stage_counts b
  ON b.pipeline = a.pipeline AND b.window = a.window AND b.stage_index = a.stage_index + 1
WHERE a.cohort > 0
