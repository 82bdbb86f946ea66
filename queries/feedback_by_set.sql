-- table: feedback_by_set
-- One pass over `feedback`: per pipeline, segment set, survey and score, the
-- responses by the smallest window holding their time (count_by_window).
-- feedback_counts and segment_feedback_counts add them up.
SELECT pipeline_index, segment_set, CAST(survey AS VARCHAR) AS survey, score,
       count_by_window(window_of(occurred_at_ms)) AS n
FROM feedback
GROUP BY pipeline_index, segment_set, CAST(survey AS VARCHAR), score
