-- metric: crm_funnel_transition_duration_seconds
-- type: histogram
-- help: Time from reaching a stage to reaching the next one, for deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
WITH g AS (
  SELECT pipeline_index, from_index, w, bucket_of(ms) AS b, COUNT(*) AS n, SUM(ms) AS ms
  FROM transition_durations
  GROUP BY pipeline_index, from_index, w, bucket_of(ms)
)
SELECT t.pipeline, t.from_stage, t.to_stage, w.window, bk.le,
       COALESCE(SUM(CASE WHEN g.w <= w.idx AND g.b <= bk.idx THEN g.n END), 0) AS value,
       CAST(COALESCE(SUM(CASE WHEN g.w <= w.idx THEN g.ms END), 0) AS DOUBLE) / 1000.0 AS sum
FROM transitions t
CROSS JOIN windows w
CROSS JOIN buckets bk
LEFT JOIN g ON g.pipeline_index = t.pipeline_index AND g.from_index = t.from_index
GROUP BY t.pipeline, t.from_stage, t.to_stage, w.window, bk.le
