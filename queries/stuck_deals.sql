-- metric: crm_funnel_stuck_deals
-- type: gauge
-- help: Open deals that have been in their current stage longer than the stage's SLA.
-- labels: pipeline, funnel_stage
-- value: value
SELECT s.pipeline, s.funnel_stage,
       COUNT(CASE WHEN p.t_ms - d.stage_since_ms > s.sla_ms THEN 1 END) AS value
FROM stages s
CROSS JOIN params p
LEFT JOIN deals d
  ON d.pipeline_index = s.pipeline_index AND d.stage_index = s.stage_index AND d.state = 'open'
WHERE s.sla_ms IS NOT NULL
GROUP BY s.pipeline, s.funnel_stage
