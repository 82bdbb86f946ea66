-- metric: crm_funnel_transition_duration_seconds
-- type: histogram
-- help: Time from reaching a stage to reaching the next one, for deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
WITH obs AS (
  SELECT t.pipeline, t.from_stage, t.to_stage, w.window, d.seconds, d.ms
  FROM transitions t
  CROSS JOIN windows w
  LEFT JOIN transition_durations d
    ON d.pipeline = t.pipeline AND d.window = w.window AND d.from_index = t.from_index
)
SELECT o.pipeline, o.from_stage, o.to_stage, o.window, b.le,
       COUNT(CASE WHEN o.seconds <= b.le_seconds THEN 1 END) AS value,
       CAST(COALESCE(SUM(o.ms), 0) AS DOUBLE) / 1000.0 AS sum
FROM obs o
CROSS JOIN buckets b
GROUP BY o.pipeline, o.from_stage, o.to_stage, o.window, b.le
