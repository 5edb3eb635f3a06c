-- Survey tokens are kept only as their SHA-256 (hex). A survey gets its token when it is
-- sent (the raw token travels only in survey.requested's link), so a scheduled one has none.
-- Links already sent keep working: their tokens are hashed here.
ALTER TABLE survey.surveys ADD COLUMN token_sha256 text UNIQUE;
UPDATE survey.surveys
SET token_sha256 = encode(sha256(convert_to(token, 'UTF8')), 'hex')
WHERE status <> 'scheduled';
ALTER TABLE survey.surveys DROP COLUMN token;
ALTER TABLE survey.surveys ADD CONSTRAINT surveys_sent_have_a_token
    CHECK (status = 'scheduled' OR status = 'cancelled' OR token_sha256 IS NOT NULL);
