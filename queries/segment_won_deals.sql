-- metric: crm_funnel_segment_won_deals
-- type: gauge
-- help: Deals of the segment that reached the won stage within the window.
-- labels: pipeline, window, dimension, segment
-- value: won
SELECT pipeline, window, dimension, segment, won FROM segment_outcomes
