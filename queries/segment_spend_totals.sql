-- table: segment_spend_totals
-- spend_totals restricted to each segment (docs/metrics.md §5.4): a spend
-- event falls in the segment of its own attribute.
SELECT CAST(sp.pipeline AS VARCHAR) AS pipeline, w.window, s.dimension, s.segment, sp.currency,
       exact_sum(sp.amount) AS spend
FROM spend sp
JOIN segment_sets s ON s.segment_set = sp.segment_set
CROSS JOIN windows w
WHERE sp.occurred_at_ms > w.start_ms
GROUP BY CAST(sp.pipeline AS VARCHAR), w.window, s.dimension, s.segment, sp.currency
