-- table: transition_durations
-- One row per deal and step i -> i+1 whose R(d, i+1) lies in a window:
-- w = the smallest such window (window_of), ms = R(d, i+1) - R(d, i).
SELECT pipeline_index, stage_index - 1 AS from_index, window_of(reached_ms) AS w, reached_ms - prev_reached_ms AS ms
FROM reached
WHERE stage_index > 0 AND window_of(reached_ms) IS NOT NULL
