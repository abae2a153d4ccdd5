-- User-supplied JSON (action metadata, notification data) is kept as
-- written: `json`, not `jsonb`. jsonb turns numbers into exact decimals,
-- and some of those (a number near the largest double, written out in
-- 300 digits) no longer read back as a double: one such action made the
-- account's action log unreadable. The server writes this JSON itself
-- (serde_json, shortest round-trip form), so `json` reads back exactly.
ALTER TABLE actions ALTER COLUMN metadata DROP DEFAULT;
ALTER TABLE actions ALTER COLUMN metadata TYPE json USING metadata::json;
ALTER TABLE actions ALTER COLUMN metadata SET DEFAULT '{}';
ALTER TABLE notifications ALTER COLUMN data DROP DEFAULT;
ALTER TABLE notifications ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE notifications ALTER COLUMN data SET DEFAULT 'null';
