-- metric: crm_funnel_period_conversion_ratio
-- type: gauge
-- help: Period entries of the next stage over period entries of this stage in the window; may exceed 1.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
SELECT a.pipeline, a.funnel_stage AS from_stage, b.funnel_stage AS to_stage, a.window,
       CAST(b.entries AS DOUBLE) / CAST(a.entries AS DOUBLE) AS value
FROM stage_counts a
JOIN stage_counts b
  ON b.pipeline = a.pipeline AND b.window = a.window AND b.stage_index = a.stage_index + 1
WHERE a.entries > 0
