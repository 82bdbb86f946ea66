-- table: close_durations
-- One row per deal and window whose R(d, won) lies in the window:
-- ms = R(d, won) - C(d) (see transition_durations.sql for why ms).
SELECT d.pipeline, w.window,
       d.won_ms - d.created_ms AS ms,
       CAST(d.won_ms - d.created_ms AS DOUBLE) / 1000.0 AS seconds
FROM deals d
CROSS JOIN windows w
WHERE d.won_ms > w.start_ms
