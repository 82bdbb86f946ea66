-- metric: crm_funnel_cost_per_lead
-- type: gauge
-- help: Spend within the window over the deals that entered the funnel within it, by currency.
-- labels: pipeline, window, currency
-- value: value
SELECT s.pipeline, s.window, s.currency, s.spend / CAST(c.cohort AS DOUBLE) AS value
FROM spend_totals s
JOIN stage_counts c ON c.pipeline = s.pipeline AND c.window = s.window AND c.stage_index = 0
WHERE c.cohort > 0
