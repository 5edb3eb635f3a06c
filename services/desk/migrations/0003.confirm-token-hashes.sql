-- Confirmation tokens are kept only as their SHA-256 (hex); the link still carries the raw
-- token, and look-ups hash it first (shared/tokens.py). Existing links keep working.
ALTER TABLE desk.tickets RENAME COLUMN confirm_token TO confirm_token_sha256;
UPDATE desk.tickets
SET confirm_token_sha256 = encode(sha256(convert_to(confirm_token_sha256, 'UTF8')), 'hex')
WHERE confirm_token_sha256 IS NOT NULL;
