-- table: spend_totals
-- Per pipeline, window and currency: the sum of the amounts of the spend
-- events with occurred_at in the window (docs/metrics.md §5.2); a currency
-- only where it occurs. `spend` holds the events up to T.
SELECT CAST(s.pipeline AS VARCHAR) AS pipeline, w.window, s.currency, exact_sum(s.amount) AS spend
FROM spend s
CROSS JOIN windows w
WHERE s.occurred_at_ms > w.start_ms
GROUP BY CAST(s.pipeline AS VARCHAR), w.window, s.currency
