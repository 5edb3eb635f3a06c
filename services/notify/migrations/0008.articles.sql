-- The knowledge articles suggested for a ticket (knowledge's articles.suggested), which its
-- confirmation offers: NULL until knowledge answered, '[]' when no article fits.
ALTER TABLE notify.recipients ADD COLUMN articles jsonb;
