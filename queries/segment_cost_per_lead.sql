-- metric: crm_funnel_segment_cost_per_lead
-- type: gauge
-- help: Spend on the segment within the window over its deals that entered the funnel within it, by currency.
-- labels: pipeline, window, dimension, segment, currency
-- value: value
SELECT s.pipeline, s.window, s.dimension, s.segment, s.currency, s.spend / CAST(c.cohort AS DOUBLE) AS value
FROM segment_spend_totals s
JOIN segment_stage_counts c ON c.pipeline = s.pipeline AND c.window = s.window AND c.dimension = s.dimension
  AND c.segment = s.segment AND c.stage_index = 0
WHERE c.cohort > 0
