-- table: outcome_counts
-- One pass over `deals`: per pipeline and segment set, the deals that reached
-- the won stage and the deals lost (final state) by the smallest window
-- holding the time, as count_by_window lists. outcomes and segment_outcomes
-- add them up.
SELECT pipeline_index, segment_set,
       count_by_window(window_of(won_ms)) AS won,
       count_by_window(CASE WHEN state = 'lost' THEN window_of(lost_ms) END) AS lost
FROM deals
GROUP BY pipeline_index, segment_set
