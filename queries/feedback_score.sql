-- metric: crm_funnel_feedback_score
-- type: histogram
-- help: Feedback scores within the window by survey (CSAT 1-5, NPS 0-10); every response counts.
-- labels: pipeline, window, survey
-- value: value
WITH grid AS (
  SELECT p.pipeline, w.window, s.survey
  FROM pipelines p
  CROSS JOIN windows w
  CROSS JOIN surveys s
), totals AS (
  SELECT pipeline, window, survey, SUM(score * n) AS score_sum
  FROM feedback_counts
  GROUP BY pipeline, window, survey
), cumulative AS (
  SELECT c.pipeline, c.window, c.survey, b.le, SUM(c.n) AS n
  FROM feedback_counts c
  JOIN score_buckets b ON c.score <= b.bound
  GROUP BY c.pipeline, c.window, c.survey, b.le
)
SELECT g.pipeline, g.window, g.survey, b.le,
       COALESCE(c.n, 0) AS value,
       CAST(COALESCE(t.score_sum, 0) AS DOUBLE) AS sum
FROM grid g
CROSS JOIN score_buckets b
LEFT JOIN cumulative c ON c.pipeline = g.pipeline AND c.window = g.window AND c.survey = g.survey AND c.le = b.le
LEFT JOIN totals t ON t.pipeline = g.pipeline AND t.window = g.window AND t.survey = g.survey
