-- metric: crm_funnel_acquisition_spend
-- type: gauge
-- help: Money spent to acquire customers within the window, by currency (spend events).
-- labels: pipeline, window, currency
-- value: spend
SELECT pipeline, window, currency, spend FROM spend_totals WHERE spend IS NOT NULL
