-- Saved scenarios carry a planner's note beside their name (renamed with PATCH /v1/scenarios/{id}).
ALTER TABLE scenarios ADD COLUMN note text;
