-- Up Migration

-- What untrusted senders can make us keep is bounded (ingestion/storage-bounds.ts): per tenant, the
-- newest refusals up to a row and byte quota, for a retention period; for a tenant that is not
-- configured, only a counted, truncated sample.
ALTER TABLE rejected_events
  ADD COLUMN body_bytes integer,                       -- size of the body as received (raw_body of a sample is cut short)
  ADD COLUMN sampled    boolean NOT NULL DEFAULT false; -- a sample of a request for an unknown tenant: truncated, allow-listed headers, not replayable
UPDATE rejected_events SET body_bytes = octet_length(raw_body);
ALTER TABLE rejected_events ALTER COLUMN body_bytes SET NOT NULL;
-- A process of the previous version, still running during an upgrade, inserts without the size:
-- take it from the body rather than refuse the row (a refusal must never be lost).
CREATE FUNCTION rejected_events_body_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.body_bytes := coalesce(NEW.body_bytes, octet_length(NEW.raw_body));
  RETURN NEW;
END $$;
CREATE TRIGGER rejected_events_body_bytes BEFORE INSERT ON rejected_events
  FOR EACH ROW WHEN (NEW.body_bytes IS NULL) EXECUTE FUNCTION rejected_events_body_bytes();
-- A tenant's newest refusals first (the quota keeps those), and the samples on their own.
CREATE INDEX rejected_events_tenant_id_idx ON rejected_events (tenant_id, id) WHERE NOT sampled;
CREATE INDEX rejected_events_sampled_idx ON rejected_events (id) WHERE sampled;

-- Down Migration
DROP TRIGGER rejected_events_body_bytes ON rejected_events;
DROP FUNCTION rejected_events_body_bytes();
DROP INDEX rejected_events_sampled_idx;
DROP INDEX rejected_events_tenant_id_idx;
ALTER TABLE rejected_events DROP COLUMN sampled, DROP COLUMN body_bytes;
