-- metric: crm_funnel_segment_customer_acquisition_cost
-- type: gauge
-- help: Spend on the segment within the window over its deals won within it, by currency.
-- labels: pipeline, window, dimension, segment, currency
-- value: value
SELECT s.pipeline, s.window, s.dimension, s.segment, s.currency, s.spend / CAST(o.won AS DOUBLE) AS value
FROM segment_spend_totals s
JOIN segment_outcomes o ON o.pipeline = s.pipeline AND o.window = s.window AND o.dimension = s.dimension
  AND o.segment = s.segment
WHERE o.won > 0
