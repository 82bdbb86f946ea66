-- table: outcomes
-- Per pipeline and window: deals that reached the won stage in the window,
-- and deals lost (final state) in the window.
SELECT p.pipeline, w.window,
       COUNT(CASE WHEN d.won_ms > w.start_ms THEN 1 END) AS won,
       COUNT(CASE WHEN d.state = 'lost' AND d.lost_ms > w.start_ms THEN 1 END) AS lost
FROM pipelines p
CROSS JOIN windows w
LEFT JOIN deals d ON d.pipeline = p.pipeline
GROUP BY p.pipeline, w.window
