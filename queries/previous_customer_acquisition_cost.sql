-- metric: crm_funnel_previous_customer_acquisition_cost
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of crm_funnel_customer_acquisition_cost.
-- labels: pipeline, window, currency
-- value: value
-- export: no
SELECT s.pipeline, s.window, s.currency, s.prev_spend / CAST(o.prev_won AS DOUBLE) AS value
FROM spend_totals s
JOIN outcomes o ON o.pipeline = s.pipeline AND o.window = s.window
WHERE o.prev_won > 0
