-- metric: crm_funnel_segment_acquisition_spend
-- type: gauge
-- help: Money spent within the window on the segment (a spend event's own attribute), by currency.
-- labels: pipeline, window, dimension, segment, currency
-- value: spend
SELECT pipeline, window, dimension, segment, currency, spend FROM segment_spend_totals
