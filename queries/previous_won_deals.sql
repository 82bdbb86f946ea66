-- metric: crm_funnel_previous_won_deals
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_won_deals.
-- labels: pipeline, window
-- value: prev_won
-- export: no
SELECT pipeline, window, prev_won FROM outcomes WHERE prev_won IS NOT NULL
