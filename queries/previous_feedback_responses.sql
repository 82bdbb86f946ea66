-- metric: crm_funnel_previous_feedback_responses
-- type: gauge
-- help: The previous period's value (at T - W over (T - 2W, T - W], docs/metrics.md §5.5) of the responses of crm_funnel_feedback_score (its _count), by survey.
-- labels: pipeline, window, survey
-- value: n
-- export: no
-- Zeros included, like the histogram's _count, for every window with a previous period.
SELECT p.pipeline, w.window, s.survey, COALESCE(SUM(c.n), 0) AS n
FROM pipelines p
CROSS JOIN windows w
CROSS JOIN surveys s
LEFT JOIN previous_feedback_counts c ON c.pipeline = p.pipeline AND c.window = w.window AND c.survey = s.survey
WHERE w.prev_idx IS NOT NULL
GROUP BY p.pipeline, w.window, s.survey
