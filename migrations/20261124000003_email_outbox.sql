-- Mail stored by the `outbox` transport: read by people in development,
-- and by a future drain that relays it (sent_at marks what was relayed).
CREATE TABLE email_outbox (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recipient  text NOT NULL,
    subject    text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX email_outbox_recipient ON email_outbox (recipient, created_at DESC);
