-- Who to reach per ticket, and every message owed to them: the e-mail outbox.
CREATE TABLE notify.recipients (
    ticket_id uuid PRIMARY KEY,
    number text,
    name text,
    email text,
    language text,
    subject text,
    created_at timestamptz,
    priority text,
    first_response_due_at timestamptz
);

CREATE TABLE notify.deliveries (
    id bigserial PRIMARY KEY,
    delivery_key text NOT NULL UNIQUE,
    ticket_id uuid NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX deliveries_pending ON notify.deliveries (id) WHERE status = 'pending';

CREATE FUNCTION notify.deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('notify_deliveries', ''); RETURN NULL; END $$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON notify.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify.deliveries_notify();
