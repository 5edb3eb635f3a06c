-- Each lease carries the token of the sender that took it, so a sender renews only what is
-- still its own and never sends what another sender has taken over.
ALTER TABLE notify.deliveries ADD COLUMN claim_token uuid;
