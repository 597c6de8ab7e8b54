/** Reads a V8 `.cpuprofile` (from `node --cpu-prof`) into the hottest functions and packages by self time. */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  samples?: number[];
  timeDeltas?: number[];
}

const idleFrames = new Set(['(idle)', '(program)', '(garbage collector)']);

/** node_modules/<package> or the repository folder a script lives in, so time adds up per component. */
function componentOf(url: string): string {
  if (!url) return '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  if (url.startsWith('node:')) return 'node core';
  const local = /\/(api|activities|adapters|bench|config|db|security|shared|stack|workers|workflows|sandboxes)\//.exec(url);
  return local?.[1] ? `switchboard/${local[1]}` : url;
}

export function summarizeCpuProfile(profile: CpuProfile, top: number): string {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  const byComponent = new Map<string, number>();
  let busy = 0;
  let total = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  samples.forEach((nodeId, index) => {
    const micros = Math.max(0, deltas[index] ?? 0);
    total += micros;
    const frame = frames.get(nodeId);
    if (!frame) return;
    const name = frame.functionName || '(anonymous)';
    if (idleFrames.has(name)) {
      byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
      return;
    }
    busy += micros;
    const file = frame.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules\/)/, '$1');
    const key = `${name} ${file ? `${file.split('/').slice(-3).join('/')}:${frame.lineNumber + 1}` : '(native)'}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
    const component = componentOf(frame.url);
    byComponent.set(component, (byComponent.get(component) ?? 0) + micros);
  });
  const ms = (micros: number): string => (micros / 1000).toFixed(0);
  const share = (micros: number): string => `${((micros / Math.max(1, busy)) * 100).toFixed(1)} %`;
  const rows = (entries: Map<string, number>): string =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => `| ${name.replace(/\|/g, '\\|')} | ${ms(micros)} | ${idleFrames.has(name) ? '' : share(micros)} |`)
      .join('\n');
  return [
    `Sampled ${ms(total)} ms, of which ${ms(busy)} ms on the CPU (shares below are of CPU time).`,
    '',
    '| Component | Self ms | Share |',
    '|---|---:|---:|',
    rows(byComponent),
    '',
    '| Function | Self ms | Share |',
    '|---|---:|---:|',
    rows(byFunction),
  ].join('\n');
}
