-- When knowledge made the ticket's suggested articles (articles.suggested's suggested_at): it
-- suggests again once the category is known or corrected, and only a later list replaces them.
ALTER TABLE desk.tickets ADD COLUMN suggested_at timestamptz;
