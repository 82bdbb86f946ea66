-- metric: crm_funnel_previous_period_conversion_ratio
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_period_conversion_ratio.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
-- export: no
SELECT a.pipeline, a.funnel_stage AS from_stage, b.funnel_stage AS to_stage, a.window,
       CAST(b.prev_entries AS DOUBLE) / CAST(a.prev_entries AS DOUBLE) AS value
FROM stage_counts a
JOIN stage_counts b
  ON b.pipeline = a.pipeline AND b.window = a.window AND b.stage_index = a.stage_index + 1
WHERE a.prev_entries > 0
