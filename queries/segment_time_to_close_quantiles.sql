-- metric: crm_funnel_segment_time_to_close_quantile_seconds
-- type: summary
-- help: Nearest-rank quantiles of the time to close of the segment's deals won in the window.
-- labels: pipeline, window, dimension, segment, quantile
-- value: value
WITH r AS (
  SELECT c.pipeline_index, s.dimension, s.segment, quantiles_by_window(c.w, c.ms) AS ranks
  FROM close_durations c
  JOIN segment_sets s ON s.segment_set = c.segment_set
  GROUP BY c.pipeline_index, s.dimension, s.segment
)
SELECT p.pipeline, w.window, r.dimension, r.segment, q.quantile,
       CAST(list_at(list_at(r.ranks, w.idx), q.idx) AS DOUBLE) / 1000.0 AS value
FROM r
JOIN pipelines p ON p.pipeline_index = r.pipeline_index
CROSS JOIN windows w
CROSS JOIN quantiles q
WHERE list_at(list_at(r.ranks, w.idx), q.idx) IS NOT NULL
