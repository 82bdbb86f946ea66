-- metric: crm_funnel_segment_feedback_responses
-- type: gauge
-- help: Feedback responses within the window from the segment's deals, by survey and band (csat satisfied 4-5, neutral 3, dissatisfied 1-2; nps promoter 9-10, passive 7-8, detractor 0-6).
-- labels: pipeline, window, dimension, segment, survey, band
-- value: n
SELECT pipeline, window, dimension, segment, survey, band, n FROM segment_feedback_counts
