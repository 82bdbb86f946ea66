-- metric: crm_funnel_evaluation_timestamp_seconds
-- type: gauge
-- help: The evaluation time T of the refresh these values come from.
-- labels:
-- value: value
SELECT CAST(t_ms AS DOUBLE) / 1000.0 AS value FROM params
