/**
 * The short form of `npm run chaos` (chaos/run.ts): 3 server processes on a
 * dedicated embedded Postgres, 150 alerts (Alertmanager v4 and generic), one
 * process SIGKILLed and restarted every few seconds, Postgres restarted once
 * mid-load. Needs the built server (npm test builds first).
 */
import { describe, expect, it } from 'vitest';
import { chaosOptions, runChaos } from '../../chaos/run.js';

describe('chaos, short form', () => {
  it('nothing accepted is lost, no step runs again after its recorded success, every run finishes', async () => {
    const report = await runChaos(chaosOptions('short', { progress: (line) => console.log(`[chaos] ${line}`) }));
    const t = report.analysis.totals;
    // The whole table on failure: it names the run ids and where the diagnostics are.
    const context = `\n${report.markdown}\n${JSON.stringify(report.analysis.violations.slice(0, 10), null, 2)}`;
    expect(t.alertsAccepted, context).toBe(t.alertsSent);
    expect(t.episodesStored, context).toBe(t.alertsAccepted);
    expect(t.alertsLost, context).toBe(0);
    expect(t.runsCreated, context).toBe(t.runsExpected);
    expect(t.runsFinished, context).toBe(t.runsCreated);
    expect(t.doubleExecutions, context).toBe(0);
    expect(t.callsWithBadKeys, context).toBe(0);
    expect(t.brokenChains, context).toBe(0);
    expect(t.kills, context).toBeGreaterThan(0);
    expect(report.analysis.mustHoldFailed, context).toEqual([]);
    expect(report.ok).toBe(true);
  }, 300_000);
});
