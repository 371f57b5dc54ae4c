/**
 * `npm run chaos` — the scale-out chaos run (see run.ts). Prints progress and
 * a report table; exits 1 when a must-hold invariant fails.
 *
 *   npm run chaos                      1,000 alerts (the full form)
 *   npm run chaos -- --short           150 alerts, < 60 s (also CHAOS_ALERTS=150)
 *   npm run chaos -- --alerts 500 --rate 10 --seed 7 --report chaos/last.md
 *   npm run chaos -- --database server     DATABASE_URL's server (no Postgres restart)
 *   npm run chaos -- --pg-stop clean       stop Postgres cleanly instead of killing it hard
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { chaosOptions, runChaos, type ChaosOptions } from './run.js';

const { values } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    alerts: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string' },
    'lease-ms': { type: 'string' },
    database: { type: 'string' },
    'no-pg-restart': { type: 'boolean', default: false },
    'pg-stop': { type: 'string' },
    'no-kills': { type: 'boolean', default: false },
    report: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log('usage: npm run chaos -- [--short] [--alerts N] [--rate alerts/s] [--seed N] [--workers N] [--lease-ms N] [--database embedded|server] [--pg-stop crash|clean] [--no-pg-restart] [--no-kills] [--report file.md] [--json file.json]');
  process.exit(0);
}

function int(name: string, text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`${name}: must be a positive integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

const envAlerts = int('CHAOS_ALERTS', process.env.CHAOS_ALERTS);
const alerts = int('--alerts', values.alerts) ?? envAlerts;
const short = values.short || (alerts !== undefined && alerts <= 300);
if (values.database && values.database !== 'embedded' && values.database !== 'server') {
  console.error(`--database: must be embedded or server, got ${JSON.stringify(values.database)}`);
  process.exit(2);
}
if (values['pg-stop'] && values['pg-stop'] !== 'crash' && values['pg-stop'] !== 'clean') {
  console.error(`--pg-stop: must be crash or clean, got ${JSON.stringify(values['pg-stop'])}`);
  process.exit(2);
}
const overrides: Partial<ChaosOptions> = {
  ...(values['pg-stop'] && { pgStop: values['pg-stop'] as ChaosOptions['pgStop'] }),
  ...(alerts !== undefined && { alerts }),
  ...(int('--rate', values.rate) !== undefined && { alertsPerSecond: int('--rate', values.rate)! }),
  ...(int('--seed', values.seed) !== undefined && { seed: int('--seed', values.seed)! }),
  ...(int('--workers', values.workers) !== undefined && { workers: int('--workers', values.workers)! }),
  ...(int('--lease-ms', values['lease-ms']) !== undefined && { leaseMs: int('--lease-ms', values['lease-ms'])! }),
  ...(values.database && { database: values.database as ChaosOptions['database'] }),
  ...(values['no-pg-restart'] && { pgOutageMs: 0 }),
  ...(values['no-kills'] && { killEveryMs: [0, 0] as [number, number] }),
};
const options = chaosOptions(short ? 'short' : 'full', overrides);
const t0 = Date.now();
const stamp = () => `[chaos ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
options.progress = (line) => console.log(`${stamp()} ${line}`);

try {
  const report = await runChaos(options);
  console.log(`\n${report.markdown}\n`);
  if (values.report) await writeFile(values.report, `${report.markdown}\n`);
  if (values.json) await writeFile(values.json, JSON.stringify({ ok: report.ok, checks: report.analysis.checks, violations: report.analysis.violations, latency: report.analysis.latency, durationMs: report.durationMs }, null, 2));
  process.exit(report.ok ? 0 : 1);
} catch (err) {
  console.error(`chaos run failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
