-- table: spend_totals
-- Per pipeline, window and currency: the sum of the amounts of the spend
-- events with occurred_at in the window (docs/metrics.md §5.2), and in its
-- previous period (T - 2W, T - W] (prev_spend, §5.5); NULL where there is
-- none. `spend` holds the events up to T.
SELECT CAST(s.pipeline AS VARCHAR) AS pipeline, w.window, s.currency,
       exact_sum(CASE WHEN s.occurred_at_ms > w.start_ms THEN s.amount END) AS spend,
       exact_sum(CASE WHEN s.occurred_at_ms <= w.start_ms THEN s.amount END) AS prev_spend
FROM spend s
CROSS JOIN windows w
WHERE s.occurred_at_ms > COALESCE(w.prev_start_ms, w.start_ms)
GROUP BY CAST(s.pipeline AS VARCHAR), w.window, s.currency
