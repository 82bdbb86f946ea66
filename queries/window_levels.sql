-- table: window_levels
-- For each window index w, every window that holds it (idx >= w): a fact
-- counted under its smallest window w is summed into each of these.
SELECT a.idx AS w, b.window
FROM windows a
JOIN windows b ON a.idx <= b.idx
