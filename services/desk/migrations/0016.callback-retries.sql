-- An unreached call-back is tried again (CARELOOP_DESK_CALLBACK_ATTEMPTS calls in all, each
-- CARELOOP_DESK_CALLBACK_RETRY_HOURS after the last): the calls made so far. The due time moves
-- to the next try; `done` is set once the learner was reached or the last call was made.
ALTER TABLE desk.ticket_callbacks ADD COLUMN attempts smallint NOT NULL DEFAULT 0;
ALTER TABLE desk.cases ADD COLUMN callback_attempts smallint NOT NULL DEFAULT 0;
