-- metric: crm_funnel_previous_stage_entries
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_stage_entries.
-- labels: pipeline, funnel_stage, window
-- value: prev_entries
-- export: no
SELECT pipeline, funnel_stage, window, prev_entries FROM stage_counts WHERE prev_entries IS NOT NULL
