-- metric: crm_funnel_segment_lost_deals
-- type: gauge
-- help: Deals of the segment lost within the window (final state lost).
-- labels: pipeline, window, dimension, segment
-- value: lost
SELECT pipeline, window, dimension, segment, lost FROM segment_outcomes
