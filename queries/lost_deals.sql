-- metric: crm_funnel_lost_deals
-- type: gauge
-- help: Deals whose final state is lost and that were lost within the window.
-- labels: pipeline, window
-- value: lost
SELECT pipeline, window, lost FROM outcomes
