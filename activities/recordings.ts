import { ApplicationFailure } from '@temporalio/activity';
import type { TenantConfig } from '../config/schema.js';
import { storeRecording } from '../db/recordings.js';
import type { Db } from '../db/pool.js';
import type { CallProvider } from '../shared/calls.js';

export interface FetchRecordingInput {
  tenantId: string;
  callId: string;
  provider: CallProvider;
  url: string;
}

const maxRecordingBytes = 200 * 1024 * 1024;

export function createRecordingActivities(deps: { db: Db; tenant: (tenantId: string) => TenantConfig }) {
  const authorizationFor = (input: FetchRecordingInput): string | undefined => {
    const tenant = deps.tenant(input.tenantId);
    const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    if (input.provider === 'twilio' && tenant.twilio && tenant.secrets.twilioAuthToken) {
      return basic(tenant.twilio.accountSid, tenant.secrets.twilioAuthToken);
    }
    if (input.provider === 'pbx' && tenant.pbxRecordingAuth) return basic(tenant.pbxRecordingAuth.user, tenant.pbxRecordingAuth.pass);
    return undefined;
  };

  return {
    /** Copies the provider's recording into PostgreSQL, so we can serve it (with ranges) after the provider's link expires. */
    async fetchRecording(input: FetchRecordingInput): Promise<{ sizeBytes: number; contentType: string }> {
      const authorization = authorizationFor(input);
      let response: Response;
      try {
        response = await fetch(input.url, {
          headers: authorization ? { authorization } : {},
          signal: AbortSignal.timeout(60_000),
        });
      } catch {
        throw ApplicationFailure.retryable('recording host unreachable', 'Unavailable');
      }
      // A recording is often published a little after the call ends: 404 is worth retrying for a while.
      if (response.status === 404 || response.status >= 500) throw ApplicationFailure.retryable(`recording host answered ${response.status}`, 'Unavailable');
      if (!response.ok) throw ApplicationFailure.nonRetryable(`recording host answered ${response.status}`, 'Rejected');
      const declared = Number(response.headers.get('content-length') ?? '0');
      if (declared > maxRecordingBytes) throw ApplicationFailure.nonRetryable(`recording is larger than ${maxRecordingBytes} bytes`, 'Rejected');
      const bytes = Buffer.from(await response.arrayBuffer());
      const contentType = response.headers.get('content-type')?.split(';')[0] ?? 'audio/wav';
      await storeRecording(deps.db, { tenantId: input.tenantId, callId: input.callId, contentType, bytes, sourceUrl: input.url });
      return { sizeBytes: bytes.length, contentType };
    },
  };
}
