-- The tickets the early warning counts and incidents link, the baseline's hourly counts,
-- alerts, incidents with their timeline and links, the learners' enrolments, the learner
-- notices waiting to be released, and the response group's messages.

-- A ticket as ticket.created (its text, course, channel, learner) and ticket.routed (its
-- category) describe it: either may arrive first, so every fact but the id is nullable.
CREATE TABLE incident.tickets (
    ticket_id uuid PRIMARY KEY,
    number text,
    created_at timestamptz,
    channel text,
    course_id text,
    category text,
    subject text,
    description text,
    learner jsonb,
    learner_key text,
    locale text,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_created ON incident.tickets (created_at);

-- Tickets per key (category / course / channel value) and hour: the learned baseline.
CREATE TABLE incident.hourly_counts (
    dimension text NOT NULL,
    value text NOT NULL,
    hour timestamptz NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (dimension, value, hour)
);
CREATE INDEX hourly_counts_hour ON incident.hourly_counts (hour);

CREATE TABLE incident.alerts (
    alert_id uuid PRIMARY KEY,
    kind text NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    observed double precision NOT NULL,
    expected double precision NOT NULL,
    p_value double precision,
    title text NOT NULL,
    keywords text[] NOT NULL,
    sample_ticket_ids uuid[] NOT NULL,
    raised_at timestamptz NOT NULL,
    incident_id uuid
);
CREATE INDEX alerts_key ON incident.alerts (kind, dimension, value, raised_at DESC);

CREATE SEQUENCE incident.incident_numbers;
CREATE TABLE incident.incidents (
    incident_id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE,
    title text NOT NULL,
    title_en text,
    severity text NOT NULL CHECK (severity IN ('sev1', 'sev2', 'sev3')),
    status text NOT NULL
        CHECK (status IN ('investigating', 'identified', 'monitoring', 'resolved')),
    criteria jsonb NOT NULL,
    owner_id text,
    alert_id uuid REFERENCES incident.alerts,
    opened_by text NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    resolution text,
    resolved_by text,
    resolved_at timestamptz
);
CREATE INDEX incidents_open ON incident.incidents (opened_at) WHERE status <> 'resolved';

-- What happened, in order; `public` entries are the status page's progress updates.
CREATE TABLE incident.timeline (
    entry_id bigserial PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    status text,
    message text,
    message_en text,
    by text NOT NULL,
    public boolean NOT NULL DEFAULT false
);
CREATE INDEX timeline_incident ON incident.timeline (incident_id, entry_id);

-- A ticket's link to an incident; an agent's unlink is kept (`unlinked_at`) so that the
-- criteria never link that ticket again.
CREATE TABLE incident.links (
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    ticket_id uuid NOT NULL,
    linked_by text,
    linked_at timestamptz NOT NULL DEFAULT now(),
    unlinked_by text,
    unlinked_at timestamptz,
    PRIMARY KEY (incident_id, ticket_id)
);
CREATE INDEX links_ticket ON incident.links (ticket_id);

-- careloop.learners.v1 as this service needs it: how to reach a learner, and their courses.
CREATE TABLE incident.learners (
    learner_id text PRIMARY KEY,
    name text,
    email text,
    phone text,
    wechat_openid text,
    locale text NOT NULL,
    preferred_channel text,
    courses text[] NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX learners_courses ON incident.learners USING gin (courses);

-- One message per learner per announcement (or resolution): released to the outbox at the
-- channel's rate, in the transaction that marks it released, so each goes out exactly once.
CREATE TABLE incident.notices (
    notice_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    announcement_id uuid NOT NULL,
    kind text NOT NULL,
    learner_key text NOT NULL,
    learner jsonb NOT NULL,
    ticket_id uuid,
    channel text NOT NULL,
    locale text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    UNIQUE (announcement_id, learner_key)
);
CREATE INDEX notices_pending ON incident.notices (channel, created_at) WHERE released_at IS NULL;

CREATE TABLE incident.announcements (
    announcement_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    kind text NOT NULL,
    audience text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    body_en text,
    learners integer NOT NULL,
    by text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

-- The response group's e-mails and robot messages, sent by a loop until each went through.
CREATE TABLE incident.pages (
    page_id bigserial PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incident.incidents,
    target text NOT NULL,  -- 'email:<address>' or 'webhook'
    subject text NOT NULL,
    body text NOT NULL,
    urgent boolean NOT NULL DEFAULT false,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    next_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    failed_at timestamptz
);
CREATE INDEX pages_due ON incident.pages (next_at) WHERE sent_at IS NULL AND failed_at IS NULL;
