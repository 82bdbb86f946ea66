-- metric: crm_funnel_transition_duration_seconds
-- type: histogram
-- help: Time from reaching a stage to reaching the next one, for deals that reached the next stage in the window.
-- labels: pipeline, from_stage, to_stage, window
-- value: value
WITH g AS (
  SELECT pipeline_index, from_index, histogram_by_window(w, ms) AS h, sum_by_window(w, ms) AS ms
  FROM transition_durations
  GROUP BY pipeline_index, from_index
)
SELECT t.pipeline, t.from_stage, t.to_stage, w.window, bk.le,
       COALESCE(list_at(list_at(g.h, w.idx), bk.idx), 0) AS value,
       CAST(COALESCE(list_at(g.ms, w.idx), 0) AS DOUBLE) / 1000.0 AS sum
FROM transitions t
CROSS JOIN windows w
CROSS JOIN buckets bk
LEFT JOIN g ON g.pipeline_index = t.pipeline_index AND g.from_index = t.from_index
