-- metric: crm_funnel_won_deals
-- type: gauge
-- help: Deals that reached the won stage within the window.
-- labels: pipeline, window
-- value: won
SELECT pipeline, window, won FROM outcomes
