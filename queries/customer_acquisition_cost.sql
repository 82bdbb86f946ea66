-- metric: crm_funnel_customer_acquisition_cost
-- type: gauge
-- help: Spend within the window over the deals won within it, by currency.
-- labels: pipeline, window, currency
-- value: value
SELECT s.pipeline, s.window, s.currency, s.spend / CAST(o.won AS DOUBLE) AS value
FROM spend_totals s
JOIN outcomes o ON o.pipeline = s.pipeline AND o.window = s.window
WHERE o.won > 0
