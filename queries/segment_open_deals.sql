-- metric: crm_funnel_segment_open_deals
-- type: gauge
-- help: Open deals of the segment, in any stage.
-- labels: pipeline, dimension, segment
-- value: value
WITH g AS (
  SELECT segment_set, COUNT(*) AS n FROM deals WHERE state = 'open' GROUP BY segment_set
), b AS (
  SELECT s.pipeline_index, s.dimension, s.segment, SUM(g.n) AS n
  FROM g
  JOIN segment_sets s ON s.segment_set = g.segment_set
  GROUP BY s.pipeline_index, s.dimension, s.segment
)
SELECT sg.pipeline, sg.dimension, sg.segment, COALESCE(b.n, 0) AS value
FROM segments sg
LEFT JOIN b ON b.pipeline_index = sg.pipeline_index AND b.dimension = sg.dimension AND b.segment = sg.segment
