// Kommo (amoCRM) API v4 stand-in: OAuth 2.0, contacts, companies, leads, call notes, incoming
// (unsorted) SIP leads and tasks (see CONTRACTS.md). Each route module adds its own paths.
import { createSandboxCore } from '../core.js';
import { systemClock } from '../http.js';
import { callRoutes } from './calls.js';
import { contactRoutes } from './contacts.js';
import { controlSeedRoutes } from './control.js';
import { notFound, problem } from './errors.js';
import type { KommoSandbox, KommoSandboxOptions } from './handle.js';
import { ipWhitelist, rateLimit } from './limits.js';
import { noteRoutes } from './notes.js';
import { bearerAuth, KommoTokens, oauthRoutes } from './oauth.js';
import { KommoStore } from './store.js';
import { taskRoutes } from './tasks.js';
import type { KommoState } from './types.js';
import { unsortedRoutes } from './unsorted.js';

export { phoneKey } from './store.js';
export { KOMMO_STATUS } from './types.js';
export type * from './handle.js';
export type * from './types.js';

export async function startKommoSandbox(options: KommoSandboxOptions): Promise<KommoSandbox> {
  const clock = options.clock ?? systemClock;
  const store = new KommoStore(clock);
  const tokens = new KommoTokens(options.oauth, options.token, clock);
  let allowedIps = options.allowedIps;
  const { contacts, companies, leads, unsorted, notes, tasks, users } = store;
  const core = createSandboxCore({
    state: (requests): KommoState => structuredClone({ contacts, companies, leads, unsorted, notes, tasks, users, oauth: tokens.state, requests }),
    unavailable: (res) => problem(res, 503, 'Service Unavailable'),
  });
  const { app } = core;
  controlSeedRoutes(app, store, tokens);
  // Order matters: who may call, then the token endpoint, then the Bearer check for the API.
  app.use(ipWhitelist(() => allowedIps));
  app.use(rateLimit(options, clock, core.counter));
  oauthRoutes(app, tokens);
  app.use(bearerAuth(tokens));
  contactRoutes(app, store);
  callRoutes(app, store);
  unsortedRoutes(app, store);
  noteRoutes(app, store);
  taskRoutes(app, store);
  app.use((_req, res) => notFound(res));

  const handle = await core.start(options.port ?? 0);
  return {
    ...handle,
    seedContact: (input) => store.seedContact(input),
    seedCompany: (input) => store.seedCompany(input),
    seedUser: (input) => store.seedUser(input),
    seedLead: (input) => store.seedLead(input),
    authorize: () => tokens.authorize(),
    expireAccessTokens: () => tokens.accessTokens.clear(),
    setAllowedIps: (ips) => {
      allowedIps = ips;
    },
  };
}
