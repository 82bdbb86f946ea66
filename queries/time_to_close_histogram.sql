-- metric: crm_funnel_time_to_close_seconds
-- type: histogram
-- help: Time from entering the funnel to reaching the won stage, for deals won in the window.
-- labels: pipeline, window
-- value: value
WITH g AS (
  SELECT pipeline_index, histogram_by_window(w, ms) AS h, sum_by_window(w, ms) AS ms
  FROM close_durations
  GROUP BY pipeline_index
)
SELECT p.pipeline, w.window, bk.le,
       COALESCE(list_at(list_at(g.h, w.idx), bk.idx), 0) AS value,
       CAST(COALESCE(list_at(g.ms, w.idx), 0) AS DOUBLE) / 1000.0 AS sum
FROM pipelines p
CROSS JOIN windows w
CROSS JOIN buckets bk
LEFT JOIN g ON g.pipeline_index = p.pipeline_index
