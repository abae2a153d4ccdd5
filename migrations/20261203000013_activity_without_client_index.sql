-- The activity table loses its index by client: every row of an API client
-- carries the client's owner as account_id, so a listing filtered by client
-- is served by activity_account (account_id, occurred_at DESC, id DESC)
-- once the service has looked up the owner. One index fewer to maintain
-- for every recorded request.
DROP INDEX IF EXISTS activity_client;
