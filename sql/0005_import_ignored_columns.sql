-- Columns of an imported file that could not become custom fields, reported back.
ALTER TABLE contact_imports ADD COLUMN ignored_columns text[] NOT NULL DEFAULT '{}';
