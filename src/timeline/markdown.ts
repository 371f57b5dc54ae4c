/** The postmortem view as Markdown, to paste into a postmortem document. Pure: formats a TimelineView. */
import { formatDuration, formatOffset, formatUtc } from './format.js';
import type { TimelineView } from './view.js';

const ms = (iso: string): number => Date.parse(iso);

/** Escape free text for a Markdown table cell: no HTML, no accidental emphasis/links, one line. */
export function mdCell(text: string): string {
  return text
    .replace(/\r?\n|\r/g, ' ')
    .replace(/([\\`*[\]<>|])/g, '\\$1')
    .replace(/(^|\W)_|_(?=\W|$)/g, (m) => m.replace('_', '\\_'));
}

/** Inline code that survives backticks and table pipes. */
export function mdCode(text: string): string {
  const t = text.replace(/\r?\n|\r/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(t.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  return longest > 0 ? `${fence} ${t} ${fence}` : `${fence}${t}${fence}`;
}

const STATUS_WORD: Record<string, string> = { succeeded: 'succeeded', failed: '**failed**', aborted: '**aborted**', cancelled: 'cancelled', denied: '**denied**', compensated: 'compensated' };

export function timelineMarkdown(view: TimelineView): string {
  const r = view.run;
  const d = view.durations;
  const origin = view.origin;
  const dates = new Set(view.events.map((e) => e.time.slice(0, 10)));
  const oneDay = dates.size <= 1;
  const when = (iso: string | null) => (iso ? `${formatUtc(iso)} (${formatOffset(ms(iso) - ms(origin.time))})` : '—');
  const sim = r.dryRun ? ' (simulated)' : '';
  const lines: string[] = [];

  lines.push(`# Timeline: ${mdCell(r.playbook)} run ${mdCode(r.id.slice(0, 8))}${r.dryRun ? ' — DRY RUN' : ''}`, '');
  if (r.dryRun) {
    lines.push('> **DRY RUN — nothing was changed.** Side-effecting calls were recorded as "would call" with their rendered request instead of being sent; durations below are from the simulation.', '');
  }
  lines.push('| | |', '|---|---|');
  lines.push(`| Run | ${mdCode(r.id)}${r.dryRun ? ' (dry run)' : ''} |`);
  lines.push(`| Playbook | ${mdCode(r.playbook)} |`);
  lines.push(`| Status | ${STATUS_WORD[r.status] ?? mdCell(r.status)}${r.reason ? ` — ${mdCell(r.reason)}` : ''} |`);
  lines.push(`| Trigger | ${mdCell(r.trigger)}${r.startedBy ? ` by ${mdCell(r.startedBy)}` : ''} |`);
  if (r.alert) {
    const a = r.alert;
    lines.push(`| Alert | ${mdCell(a.summary || '(no summary)')}${a.severity ? ` — severity ${mdCell(a.severity)}` : ''}${a.source ? `, from ${mdCell(a.source)}` : ''}${a.fingerprint ? ` (fingerprint ${mdCode(a.fingerprint)})` : ''} |`);
    lines.push(`| Alert fired | ${formatUtc(a.startsAt)} UTC |`);
  }
  lines.push(`| Run created | ${when(r.createdAt)} |`);
  lines.push(`| Run finished | ${r.finishedAt ? when(r.finishedAt) : 'still active'} |`);
  lines.push('');
  lines.push(`Times are UTC. T+ is the time since ${origin.kind === 'alert' ? 'the alert fired' : 'the run was created (no alert)'}, ${formatUtc(origin.time)} UTC.`, '');

  lines.push('## Key durations', '', '| Measure | Duration | Measured |', '|---|---|---|');
  const from = origin.kind === 'alert' ? 'alert fired' : 'run created';
  const From = origin.kind === 'alert' ? 'Alert' : 'Run created';
  lines.push(`| ${From} → first action | ${formatDuration(d.alertToFirstActionMs)} | ${d.firstAction ? `${from} → step ${mdCode(d.firstAction.stepId)} started` : 'no step started'} |`);
  lines.push(`| ${From} → mitigation${sim} | ${formatDuration(d.alertToMitigationMs)} | ${d.mitigation ? `${from} → step ${mdCode(d.mitigation.stepId)} succeeded` : 'no mitigation step succeeded'} |`);
  const n = view.approvals.length;
  lines.push(`| Waiting for approvals | ${formatDuration(d.approvalWaitMs)} | ${n === 0 ? 'no approval asked' : `${n} approval${n === 1 ? '' : 's'}, requested → decided`} |`);
  lines.push(`| Run total | ${formatDuration(d.totalMs)} | ${d.totalMs === null ? 'run still active' : 'run created → finished'} |`);
  lines.push(`| ${From} → run end | ${formatDuration(d.alertToFinishMs)} | ${d.alertToFinishMs === null ? 'run still active' : `${from} → run finished`} |`);
  lines.push('');

  lines.push('## Steps', '', '| Step | Action | Impact | Outcome | Attempts | Started (UTC) | Took | Notes |', '|---|---|---|---|---|---|---|---|');
  for (const s of view.steps) {
    const outcome = `${STATUS_WORD[s.status] ?? mdCell(s.status)}${s.compensation && s.status !== 'compensated' ? ` (compensation ${mdCell(s.compensation)})` : ''}`;
    lines.push(`| ${mdCode(s.id)} | ${mdCode(s.action)} | ${s.impact} | ${outcome} | ${s.attempts} | ${s.startedAt ? formatUtc(s.startedAt, { date: !oneDay }) : '—'} | ${formatDuration(s.durationMs)} | ${mdCell(s.note ?? '')} |`);
  }
  lines.push('');

  if (view.approvals.length > 0) {
    lines.push('## Approvals', '', '| Step | Requested (UTC) | Approvers | Why asked | Decision | By | Waited |', '|---|---|---|---|---|---|---|');
    for (const a of view.approvals) {
      const refused = a.refused.length ? `; refused: ${a.refused.map((x) => `${x.actor} (${x.reason})`).join(', ')}` : '';
      lines.push(
        `| ${mdCode(a.stepId)} | ${formatUtc(a.requestedAt, { date: !oneDay })} | ${mdCell(a.approvers.join(', ') || 'any')} | ${mdCell(a.reasons.join('; '))} | ${a.status}${a.decidedAt ? ` at ${formatUtc(a.decidedAt, { date: !oneDay })}` : ''}${mdCell(refused)} | ${mdCell(a.decidedBy ?? '—')} | ${formatDuration(a.waitMs)} |`,
      );
    }
    lines.push('');
  }

  lines.push(`## Timeline${oneDay && dates.size === 1 ? ` (UTC, ${[...dates][0]})` : ' (UTC)'}`, '', '| Time | T+ | Who | What | Why |', '|---|---|---|---|---|');
  for (const e of view.events) {
    lines.push(`| ${formatUtc(e.time, { millis: true, date: !oneDay })} | ${formatOffset(e.offsetMs)} | ${mdCell(e.actor)} | ${mdCell(e.summary)} | ${mdCell(e.why ?? '')} |`);
  }
  lines.push('');
  lines.push(`${view.chain.events} events, hash chain head ${view.chain.head ? mdCode(view.chain.head) : '(none)'}. Verify with ${mdCode(`firebreak audit verify ${r.id}`)}.`, '');
  return lines.join('\n');
}

