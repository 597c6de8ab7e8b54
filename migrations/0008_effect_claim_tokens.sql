-- Up Migration

-- A fencing token for the ledger's claims (db/effects.ts): every claim takes the next number, and
-- an attempt releases the key, records the effect or goes on to act only while the row still
-- carries its number. An attempt that stalled past its lease, after a newer attempt claimed the
-- key, can then no longer clear the newer claim or overwrite what it stored.
ALTER TABLE external_effects ADD COLUMN claim_token bigint NOT NULL DEFAULT 0;

-- A process of the previous version, still running during an upgrade, claims without taking a
-- number (a claim is what counts an attempt): give it one, so the new version's stale attempts are
-- fenced off from its claims too.
CREATE FUNCTION external_effects_claim_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.claim_token := OLD.claim_token + 1;
  RETURN NEW;
END $$;
CREATE TRIGGER external_effects_claim_token BEFORE UPDATE ON external_effects
  FOR EACH ROW WHEN (NEW.attempts > OLD.attempts AND NEW.claim_token = OLD.claim_token)
  EXECUTE FUNCTION external_effects_claim_token();

-- Down Migration
DROP TRIGGER external_effects_claim_token ON external_effects;
DROP FUNCTION external_effects_claim_token();
ALTER TABLE external_effects DROP COLUMN claim_token;
