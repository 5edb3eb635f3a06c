-- Each sender loop (e-mail; SMS, WeChat and Weibo over HTTP) looks only at the pending
-- deliveries on its own channels, and at those still waiting for their recipient's channel
-- (NULL), instead of joining every pending delivery to its recipient to find out: during a
-- burst of e-mail confirmations the HTTP loop scanned thousands of rows to claim none.
CREATE INDEX deliveries_pending_channel ON notify.deliveries (channel, id)
    WHERE status = 'pending';
