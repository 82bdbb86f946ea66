-- table: close_durations
-- One row per deal and window whose R(d, won) lies in the window:
-- seconds = R(d, won) - C(d).
SELECT d.pipeline, w.window, CAST(d.won_ms - d.created_ms AS DOUBLE) / 1000.0 AS seconds
FROM deals d
CROSS JOIN windows w
WHERE d.won_ms > w.start_ms
