-- table: transition_durations
-- One row per deal and window whose R(d, i+1) lies in the window:
-- ms = R(d, i+1) - R(d, i). Sums add the integer ms (exact, so independent
-- of row order) and convert to seconds at the end.
SELECT r.pipeline, w.window, r.stage_index - 1 AS from_index,
       r.reached_ms - r.prev_reached_ms AS ms,
       CAST(r.reached_ms - r.prev_reached_ms AS DOUBLE) / 1000.0 AS seconds
FROM reached r
CROSS JOIN windows w
WHERE r.stage_index > 0 AND r.reached_ms > w.start_ms
