-- metric: crm_funnel_stage_entries
-- type: gauge
-- help: Deals that first reached the stage within the window (period flow count).
-- labels: pipeline, funnel_stage, window
-- value: entries
SELECT pipeline, funnel_stage, window, entries FROM stage_counts
