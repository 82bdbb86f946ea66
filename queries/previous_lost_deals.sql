-- metric: crm_funnel_previous_lost_deals
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_lost_deals.
-- labels: pipeline, window
-- value: prev_lost
-- export: no
SELECT pipeline, window, prev_lost FROM outcomes WHERE prev_lost IS NOT NULL
