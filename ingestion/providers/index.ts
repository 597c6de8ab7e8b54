import type { CallProvider } from '../../shared/calls.js';
import { pbxProvider } from './pbx.js';
import { twilioProvider } from './twilio.js';
import type { CallProviderAdapter } from './types.js';
import { voiceAiProvider } from './voice-ai.js';

/** Registered phone systems, by the name in /webhooks/{tenant}/{provider}. */
export const callProviderAdapters: Record<CallProvider, CallProviderAdapter> = {
  pbx: pbxProvider,
  twilio: twilioProvider,
  'voice-ai': voiceAiProvider,
};
