-- Answers on the learner's channel: each recipient's contacts, the channel the ticket came in
-- on and the one careloop answers on (NULL: careloop cannot reach this learner), the portal
-- link and who has the ticket; each delivery's channel (NULL while its recipient is unknown:
-- the recipient's channel then).
ALTER TABLE notify.recipients
    ADD COLUMN phone text,
    ADD COLUMN wechat_openid text,
    ADD COLUMN weibo_uid text,
    ADD COLUMN channel text,
    ADD COLUMN reply_channel text,
    ADD COLUMN portal_url text,
    ADD COLUMN agent_id text;
UPDATE notify.recipients SET reply_channel = 'email' WHERE email IS NOT NULL;

ALTER TABLE notify.deliveries ADD COLUMN channel text;
UPDATE notify.deliveries SET channel = 'email';
