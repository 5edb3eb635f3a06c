-- The knowledge articles suggested for the ticket (knowledge's articles.suggested: [{article_id,
-- title, url}], best first), which the learner's page offers with "this solved it".
ALTER TABLE desk.tickets ADD COLUMN suggested_articles jsonb;
