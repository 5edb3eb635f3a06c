"""intake's channel adapters, one module each: e-mail (SMTP gateway, IMAP), the learner API and
chat, hotline, partner webhooks, the suggestion box, WeChat and Weibo."""
