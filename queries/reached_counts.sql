-- table: reached_counts
-- One pass over `reached`: per pipeline, stage and segment set, the count of
-- deals by the smallest window of R(d, i) (entries) and of C(d) (cohort),
-- as count_by_window lists. stage_counts and segment_stage_counts add them up.
SELECT pipeline_index, stage_index, segment_set,
       count_by_window(window_of(reached_ms)) AS entries,
       count_by_window(window_of(created_ms)) AS cohort
FROM reached
GROUP BY pipeline_index, stage_index, segment_set
