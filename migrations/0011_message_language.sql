-- Up Migration

-- The language version of the template a message went out as (`es`, `pt_BR`), or of the free text;
-- NULL for messages sent before it was recorded and for those known only from a status webhook.
-- Numbered 0011: 0010 is taken by the SMS fallback's migration on its own branch.
ALTER TABLE whatsapp_messages ADD COLUMN language text;

-- Down Migration
ALTER TABLE whatsapp_messages DROP COLUMN language;
