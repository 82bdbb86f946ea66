-- table: transitions
-- Every step i -> i+1 of every pipeline, including the post-sale ones.
SELECT a.pipeline, a.pipeline_index, a.stage_index AS from_index, a.funnel_stage AS from_stage, b.funnel_stage AS to_stage
FROM stages a
JOIN stages b ON b.pipeline = a.pipeline AND b.stage_index = a.stage_index + 1
