-- What knowledge keeps of an open ticket to suggest articles again once its category is known
-- (routing's ticket.routed) or corrected (ticket.retriaged): the search words of its subject
-- and description with its language (NULL until ticket.created came: routing's event may come
-- first), and its latest category with when that was decided. Forgotten when it closes.
CREATE TABLE knowledge.tickets (
    ticket_id uuid PRIMARY KEY,
    language text CHECK (language IN ('zh', 'en')),
    words text,
    category text,
    category_at timestamptz
);
