-- metric: crm_funnel_previous_cost_per_lead
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_cost_per_lead.
-- labels: pipeline, window, currency
-- value: value
-- export: no
SELECT s.pipeline, s.window, s.currency, s.prev_spend / CAST(c.prev_entries AS DOUBLE) AS value
FROM spend_totals s
JOIN stage_counts c ON c.pipeline = s.pipeline AND c.window = s.window AND c.stage_index = 0
WHERE c.prev_entries > 0
