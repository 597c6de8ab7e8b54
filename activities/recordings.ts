import { ApplicationFailure } from '@temporalio/activity';
import { downloadRecording, RecordingDownloadFailed, RecordingDownloadRefused } from '../adapters/recording-download.js';
import type { DownloadedRecording, RecordingDownloadPolicy } from '../adapters/recording-download.js';
import type { TenantConfig } from '../config/schema.js';
import { storeRecording } from '../db/recordings.js';
import type { Db } from '../db/pool.js';
import { currentSecret } from '../security/secrets.js';
import { recordingTypeToStore } from '../shared/audio-types.js';
import type { CallProvider } from '../shared/calls.js';
import { failureTypes } from './failures.js';
import { whileHeartbeating } from './lease.js';

export interface FetchRecordingInput {
  tenantId: string;
  callId: string;
  provider: CallProvider;
  url: string;
}

/**
 * A recording URL we will not fetch (host not allowed, non-public address, too large, not audio…).
 * Permanent: the call keeps the reason (`recording.error`) and is otherwise unaffected.
 */
export const recordingRefusedType = 'RecordingRefused';

const downloadTimeoutMs = 60_000;

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** The tenant's download rules for a provider's recording: allowed hosts, and credentials bound to their own host. */
export function recordingDownloadPolicy(tenant: TenantConfig, provider: CallProvider): RecordingDownloadPolicy {
  const twilioAuthToken = currentSecret(tenant.secrets.twilioAuthToken);
  const credentials =
    provider === 'twilio' && tenant.twilio && twilioAuthToken
      ? { host: tenant.twilio.apiHost, authorization: basic(tenant.twilio.accountSid, twilioAuthToken) }
      : provider === 'pbx' && tenant.pbxRecordingAuth
        ? { host: tenant.pbxRecordingAuth.host, authorization: basic(tenant.pbxRecordingAuth.user, tenant.pbxRecordingAuth.pass) }
        : undefined;
  const { recordings } = tenant;
  const allowedHosts = [
    ...recordings.allowedHosts,
    ...recordings.privateNetworkHosts,
    ...(tenant.twilio ? [tenant.twilio.apiHost] : []),
    ...(tenant.pbxRecordingAuth ? [tenant.pbxRecordingAuth.host] : []),
  ];
  return {
    allowedHosts: [...new Set(allowedHosts)],
    privateNetworkHosts: recordings.privateNetworkHosts,
    allowPlainHttp: recordings.allowPlainHttp,
    maxBytes: recordings.maxBytes,
    maxRedirects: recordings.maxRedirects,
    timeoutMs: downloadTimeoutMs,
    ...(credentials ? { credentials } : {}),
  };
}

export function createRecordingActivities(deps: { db: Db; tenant: (tenantId: string) => TenantConfig }) {
  return {
    /** Copies the provider's recording into PostgreSQL, so we can serve it (with ranges) after the provider's link expires. */
    async fetchRecording(input: FetchRecordingInput): Promise<{ sizeBytes: number; contentType: string }> {
      const policy = recordingDownloadPolicy(deps.tenant(input.tenantId), input.provider);
      let downloaded: DownloadedRecording;
      try {
        downloaded = await whileHeartbeating(() => downloadRecording(input.url, policy));
      } catch (error) {
        // Messages name hosts and limits, never the URL's path or query (signed URLs carry tokens there) nor credentials.
        if (error instanceof RecordingDownloadRefused) throw ApplicationFailure.nonRetryable(`recording refused: ${error.message}`, recordingRefusedType, { reason: error.reason });
        if (error instanceof RecordingDownloadFailed) {
          if (error.retryable) throw ApplicationFailure.retryable(error.message, failureTypes.unavailable);
          throw ApplicationFailure.nonRetryable(error.message, failureTypes.rejected);
        }
        throw error;
      }
      const contentType = recordingTypeToStore(downloaded.declaredType, downloaded.bytes);
      if (!contentType) {
        const declared = downloaded.declaredType ?? '';
        const shown = declared.length <= 100 && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(declared) ? declared : 'a type';
        throw ApplicationFailure.nonRetryable(`recording refused: the host answered with ${shown}, not audio`, recordingRefusedType, { reason: 'not_audio' });
      }
      // A large recording takes a while to write: heartbeats go on meanwhile.
      await whileHeartbeating(() => storeRecording(deps.db, { tenantId: input.tenantId, callId: input.callId, contentType, bytes: downloaded.bytes, sourceUrl: input.url }));
      return { sizeBytes: downloaded.bytes.length, contentType };
    },
  };
}
