-- metric: crm_funnel_open_amount
-- type: gauge
-- help: Sum of the amounts of open deals by current stage and currency (a deal without amount adds 0).
-- labels: pipeline, funnel_stage, currency
-- value: value
SELECT d.pipeline, d.stage AS funnel_stage, CAST(d.currency AS VARCHAR) AS currency,
       COALESCE(exact_sum(d.amount), 0.0) AS value
FROM deals d
WHERE d.state = 'open'
GROUP BY d.pipeline, d.stage, CAST(d.currency AS VARCHAR)
