/** The open-loop generator's own process (see startOpenLoopGenerator): runs one schedule per message. */
import { runOpenLoop } from './open-loop.js';
import type { OpenLoopSettings } from './open-loop.js';

process.on('message', (message: { settings: OpenLoopSettings }) => {
  runOpenLoop(message.settings).then(
    (outcomes) => process.send?.({ outcomes }),
    (error: unknown) => process.send?.({ error: error instanceof Error ? error.message : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
