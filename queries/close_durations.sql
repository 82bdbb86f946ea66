-- table: close_durations
-- One row per deal whose R(d, won) lies in a window: w = the smallest such
-- window (window_of), ms = R(d, won) - C(d), and the deal's segment set.
-- A window holds the rows with w <= its idx. Sums add the integer ms
-- (exact, so independent of row order) and convert to seconds at the end.
SELECT pipeline_index, segment_set, window_of(won_ms) AS w, won_ms - created_ms AS ms
FROM deals
WHERE window_of(won_ms) IS NOT NULL
