-- The search words now hold the learner's LMS id with their e-mail and phone: the tickets of a
-- known learner are indexed again (desk's indexer remakes them a batch at a time).
UPDATE desk.tickets SET search_of = NULL WHERE learner ->> 'learner_id' IS NOT NULL;
