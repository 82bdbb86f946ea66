-- metric: crm_funnel_segment_open_amount
-- type: gauge
-- help: Sum of the amounts of the segment's open deals by currency (a deal without amount adds 0).
-- labels: pipeline, dimension, segment, currency
-- value: value
SELECT CAST(d.pipeline AS VARCHAR) AS pipeline, s.dimension, s.segment, CAST(d.currency AS VARCHAR) AS currency,
       COALESCE(exact_sum(d.amount), 0.0) AS value
FROM deals d
JOIN segment_sets s ON s.segment_set = d.segment_set
WHERE d.state = 'open'
GROUP BY CAST(d.pipeline AS VARCHAR), s.dimension, s.segment, CAST(d.currency AS VARCHAR)
