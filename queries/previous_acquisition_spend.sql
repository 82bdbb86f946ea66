-- metric: crm_funnel_previous_acquisition_spend
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_acquisition_spend.
-- labels: pipeline, window, currency
-- value: prev_spend
-- export: no
SELECT pipeline, window, currency, prev_spend FROM spend_totals WHERE prev_spend IS NOT NULL
