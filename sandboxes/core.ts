// One way to build, inspect and stop a sandbox, so each stand-in only adds its own routes.
import type { Express, Request, Response } from 'express';
import { controlRoutes, createApp, defaultRouteKey, listen, OutageSwitch, RequestCounter, ResponseDelay } from './http.js';
import type { RequestCounts } from './http.js';

export interface SandboxCoreOptions<S> {
  /** The inspection snapshot (also GET /_sandbox/state), given the request counts so far. */
  state: (requests: RequestCounts) => S;
  /** The system's own answer while the outage switch is on. */
  unavailable: (res: Response) => void;
  routeKey?: (req: Request) => string;
}

/** The handle every sandbox returns; each adds its own seeding and control methods. */
export interface SandboxHandle<S> {
  url: string;
  state(): S;
  setOutage(down: boolean): void;
  /** Acts on every request at once but answers it only after `ms` (0: at once); also POST /_sandbox/slow. */
  setResponseDelay(ms: number): void;
  stop(): Promise<void>;
}

export interface SandboxCore<S> {
  app: Express;
  counter: RequestCounter;
  outage: OutageSwitch;
  slow: ResponseDelay;
  state(): S;
  /** Listens once the sandbox has added its routes. */
  start(port?: number): Promise<SandboxHandle<S>>;
}

/**
 * An app with the control routes (state, outage, slow) and the counting, outage and delay
 * middlewares already in place; those skip /_sandbox/ paths, so control routes added later
 * behave as if registered first.
 */
export function createSandboxCore<S>(options: SandboxCoreOptions<S>): SandboxCore<S> {
  const app = createApp();
  const counter = new RequestCounter(options.routeKey ?? defaultRouteKey);
  const outage = new OutageSwitch();
  const slow = new ResponseDelay();
  const state = (): S => options.state(counter.snapshot());
  controlRoutes(app, state, outage, slow);
  app.use(counter.middleware());
  app.use(outage.middleware(options.unavailable));
  app.use(slow.middleware());

  const start = async (port = 0): Promise<SandboxHandle<S>> => {
    const server = await listen(app, port);
    return {
      url: server.url,
      state,
      setOutage: (down) => {
        outage.down = down;
      },
      setResponseDelay: (ms) => {
        slow.delayMs = ms;
      },
      stop: server.stop,
    };
  };
  return { app, counter, outage, slow, state, start };
}
