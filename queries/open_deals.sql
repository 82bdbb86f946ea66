-- metric: crm_funnel_open_deals
-- type: gauge
-- help: Open deals by current stage (no window).
-- labels: pipeline, funnel_stage
-- value: value
SELECT s.pipeline, s.funnel_stage, COUNT(d.deal_key) AS value
FROM stages s
LEFT JOIN deals d
  ON d.pipeline_index = s.pipeline_index AND d.stage_index = s.stage_index AND d.state = 'open'
GROUP BY s.pipeline, s.funnel_stage
