-- The trace a queued refresh comes from (W3C traceparent of the last
-- request merged, '' for none): the refresh's own trace links to it.
-- A constant default: no table rewrite.
ALTER TABLE refresh_queue ADD COLUMN trace text NOT NULL DEFAULT '';
COMMENT ON COLUMN refresh_queue.trace IS 'kck: W3C traceparent of the last request merged that came from a trace; empty: none';
