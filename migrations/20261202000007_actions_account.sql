-- A user and the API clients it owns are one account: the action log is
-- listed per account. Existing rows take their account from the actor
-- (a user is its own account; a client's is its owner's).
ALTER TABLE actions ADD COLUMN account_id uuid;
UPDATE actions SET account_id = actor_id WHERE actor_kind = 'user';
UPDATE actions a SET account_id = c.owner_id FROM api_clients c WHERE a.actor_kind = 'client' AND c.id = a.actor_id;
-- Actions of clients deleted before this migration have no account left;
-- they stay readable through the audit stream only.
CREATE INDEX actions_account ON actions (account_id, id DESC) WHERE account_id IS NOT NULL;
