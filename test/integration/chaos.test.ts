/**
 * The short chaos run (`npm run chaos -- --short`): 2 API and 2 worker processes, PostgreSQL and
 * Temporal of their own, one round of every fault under traffic; nothing accepted may be lost and
 * nothing may happen twice. The full run (`npm run chaos`) writes RELIABILITY.md.
 */
import assert from 'node:assert/strict';
import { runChaos } from '../../chaos/run.js';
import type { ChaosResult } from '../../chaos/run.js';

/** What failed, in a few lines, for the assertion message. */
function summary(result: ChaosResult): string {
  const checks = Object.entries(result.checks)
    .filter(([, total]) => total.lost + total.duplicated + total.late > 0)
    .map(([check, total]) => `${check}: ${total.lost} lost, ${total.duplicated} duplicated, ${total.late} late of ${total.expected}`);
  const findings = result.findings.slice(0, 8).map((finding) => `${finding.state} ${finding.check} ${finding.key} (faults: ${finding.faults.join(', ') || 'none'})${finding.why ? `: ${finding.why}` : ''}`);
  return [...checks, ...findings].join('\n');
}

describe('chaos run (short)', function () {
  // Start-up, about 80 s of traffic and the drain, on two cores.
  this.timeout(420_000);

  it('loses and duplicates nothing accepted through one round of every fault', async () => {
    const result = await runChaos({ short: true, log: (line) => console.log(`    [chaos] ${line}`) });
    assert.equal(result.faults.length, 10, 'every fault was injected');
    assert.deepEqual(result.faults.filter((fault) => fault.fault.error).map((fault) => `${fault.fault.kind}: ${fault.fault.error}`), [], 'no injection failed');
    assert.ok(result.traffic.accepted > 0, 'traffic was accepted');
    assert.equal(result.lost, 0, `lost:\n${summary(result)}`);
    assert.equal(result.duplicated, 0, `duplicated:\n${summary(result)}`);
  });
});
