/** Reading the tenant's secrets, some of which may be rotating (`[new, old]`, see config/schema.ts). */
import type { RotatingSecret, SwitchboardSignedProvider, TenantSecrets } from '../config/schema.js';

/** Every secret a signature may have been made with, the current one first (none when unset). */
export function acceptedSecrets(secret: RotatingSecret | undefined): readonly string[] {
  if (secret === undefined) return [];
  return typeof secret === 'string' ? [secret] : secret;
}

/** The secret we sign with, or authenticate with ourselves: the new one while it rotates. */
export function currentSecret(secret: RotatingSecret | undefined): string | undefined {
  return acceptedSecrets(secret)[0];
}

/** The keys that may have signed a provider's X-Switchboard-Signature: its own, else the tenant's shared one. */
export function switchboardSigningSecrets(secrets: TenantSecrets, provider: SwitchboardSignedProvider): readonly string[] {
  return acceptedSecrets(secrets.signingSecrets[provider] ?? secrets.webhookSigningSecret);
}

/** The key a sender of ours (the simulators, the bench) signs a provider's requests with. */
export function switchboardSigningSecret(secrets: TenantSecrets, provider: SwitchboardSignedProvider): string {
  const [current] = switchboardSigningSecrets(secrets, provider);
  // The schema refuses a tenant without a key for every signed provider.
  if (current === undefined) throw new Error(`no signing secret for ${provider}`);
  return current;
}
