-- Issue 7: every channel, follow-up messages, the learner context, linked tickets.

-- What the LMS last said about each learner (careloop.learners.v1); a ticket is matched to
-- its learner by id, else e-mail, phone or WeChat openid.
CREATE TABLE desk.learners (
    learner_id text PRIMARY KEY,
    name text,
    email text,
    phone text,
    wechat_openid text,
    context jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX learners_email ON desk.learners (email) WHERE email IS NOT NULL;
CREATE INDEX learners_phone ON desk.learners (phone) WHERE phone IS NOT NULL;
CREATE INDEX learners_openid ON desk.learners (wechat_openid) WHERE wechat_openid IS NOT NULL;

ALTER TABLE desk.tickets
    ADD COLUMN learner_id text,
    ADD COLUMN learner_context jsonb,
    ADD COLUMN related_ticket_id uuid,
    ADD COLUMN call jsonb,
    -- The satisfaction survey's link once survey asked (the learner's page shows it).
    ADD COLUMN survey_url text,
    -- The channel's own id of the message that opened the ticket (as careloop's uuid).
    ADD COLUMN message_id uuid,
    -- For channels without threads (WeChat, Weibo, SMS): the contact later messages come from.
    ADD COLUMN thread_contact text,
    -- Who and what, for keyless submissions: the same learner's same text on another channel
    -- within a short window is one ticket.
    ADD COLUMN content_key text;
CREATE INDEX tickets_learner ON desk.tickets (learner_id, created_at) WHERE learner_id IS NOT NULL;
CREATE UNIQUE INDEX tickets_message ON desk.tickets (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX tickets_thread ON desk.tickets (channel, thread_contact, updated_at)
    WHERE thread_contact IS NOT NULL;
CREATE INDEX tickets_content ON desk.tickets (content_key, created_at)
    WHERE content_key IS NOT NULL;

-- Every learner message after the first, on any channel (R1.5).
CREATE TABLE desk.messages (
    message_id uuid PRIMARY KEY,
    ticket_id uuid NOT NULL REFERENCES desk.tickets,
    channel text NOT NULL,
    learner jsonb NOT NULL,
    body text NOT NULL,
    attachments jsonb NOT NULL DEFAULT '[]',
    received_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_ticket ON desk.messages (ticket_id, created_at);
