/**
 * A run as a picture: one lane per step on a shared time axis, with gather,
 * policy, approval wait, mitigation and compensation in distinct colours
 * (and failed attempts hatched, so colour is not the only cue).
 */
import { formatDuration, formatUtc, type TimelineView } from '../timeline/index.js';
import { html, raw, type SafeHtml } from './html.js';

const WIDTH = 760;
const LABEL_W = 150;
const PAD_R = 18;
const AXIS_H = 42;
const LANE_H = 28;
const BAR_H = 16;

const NICE_STEPS_MS = [100, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000];

function tickStep(spanMs: number): number {
  return NICE_STEPS_MS.find((s) => spanMs / s <= 6) ?? NICE_STEPS_MS.at(-1)!;
}

/** Axis text is 11 units high; a generous width per character keeps labels apart without measuring fonts. */
const CHAR_W = 6.8;
const GAP = 12;
const textWidth = (text: string) => text.length * CHAR_W;

function tickLabel(offsetMs: number): string {
  if (offsetMs === 0) return '0';
  if (offsetMs < 1_000) return `+${offsetMs} ms`;
  if (offsetMs < 60_000) return `+${offsetMs / 1_000}s`;
  if (offsetMs < 3_600_000) return `+${Math.round((offsetMs / 60_000) * 10) / 10}m`;
  return `+${Math.round((offsetMs / 3_600_000) * 10) / 10}h`;
}

const KIND_NAMES: Record<string, string> = {
  gather: 'gather',
  policy: 'policy decision',
  approval: 'approval wait',
  mitigation: 'mitigation',
  compensation: 'compensation',
};

export const LEGEND: Array<[string, string]> = Object.entries(KIND_NAMES);

/** The SVG for a run's time axis. `now` closes spans that are still open. */
export function timeAxisSvg(view: TimelineView, now: number): SafeHtml {
  const ms = (iso: string) => Date.parse(iso);
  const lanes = view.steps.map((s) => s.id);
  for (const span of view.spans) if (!lanes.includes(span.stepId)) lanes.push(span.stepId);
  const times = [ms(view.run.createdAt), ...view.spans.map((s) => ms(s.start)), ...view.events.map((e) => ms(e.time))];
  const t0 = Math.min(...times);
  const end = view.run.finishedAt ? ms(view.run.finishedAt) : now;
  const t1 = Math.max(t0 + 1_000, end, ...view.spans.map((s) => (s.end ? ms(s.end) : end)));
  const span = t1 - t0;
  const plotW = WIDTH - LABEL_W - PAD_R;
  const x = (t: number) => LABEL_W + ((t - t0) / span) * plotW;
  const height = AXIS_H + Math.max(1, lanes.length) * LANE_H + 8;
  const step = tickStep(span);

  const ticks: SafeHtml[] = [];
  for (let off = 0; off <= span; off += step) {
    const tx = x(t0 + off);
    const label = tickLabel(off);
    // The last label may not fit centred on its line: keep it inside the picture.
    const fits = tx + textWidth(label) / 2 <= WIDTH - 2;
    ticks.push(
      html`<g class="tick"><line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${AXIS_H - 6}" y2="${height - 4}"></line><text x="${(fits ? tx : WIDTH - 2).toFixed(1)}" y="${AXIS_H - 12}" text-anchor="${fits ? 'middle' : 'end'}">${label}</text></g>`,
    );
  }

  const laneRows = lanes.map((id, i) => {
    const y = AXIS_H + i * LANE_H;
    const status = view.steps.find((s) => s.id === id)?.status ?? '';
    const label = id.length > 20 ? `${id.slice(0, 19)}…` : id;
    return html`<g class="lane"><rect class="lane-bg${i % 2 ? ' odd' : ''}" x="0" y="${y}" width="${WIDTH}" height="${LANE_H}"></rect><text class="lane-label" x="8" y="${y + LANE_H / 2 + 4}"><title>${id} (${status})</title>${label}</text></g>`;
  });

  const shapes = view.spans.map((s) => {
    const lane = lanes.indexOf(s.stepId);
    const y = AXIS_H + lane * LANE_H + (LANE_H - BAR_H) / 2;
    const start = ms(s.start);
    const stop = s.end ? ms(s.end) : now;
    const times = `${formatUtc(s.start, { millis: true })} UTC${s.end ? ` → ${formatUtc(s.end, { millis: true, date: false })}` : ' → now'}${s.end && s.kind !== 'policy' ? ` (${formatDuration(stop - start)})` : ''}`;
    const title = html`<title>${KIND_NAMES[s.kind] ?? s.kind} — ${s.label}; ${times}</title>`;
    const failed = /failed|interrupted|denied|rejected|expired/.test(s.outcome);
    const cls = `span ${s.kind}${failed ? ' failed' : ''}${s.end ? '' : ' open'}`;
    if (s.kind === 'policy') {
      const cx = x(start);
      const cy = y + BAR_H / 2;
      const r = BAR_H / 2;
      return html`<path class="${cls}" d="M ${cx.toFixed(1)} ${(cy - r).toFixed(1)} L ${(cx + r * 0.7).toFixed(1)} ${cy.toFixed(1)} L ${cx.toFixed(1)} ${(cy + r).toFixed(1)} L ${(cx - r * 0.7).toFixed(1)} ${cy.toFixed(1)} Z" data-kind="policy" data-step="${s.stepId}">${title}</path>`;
    }
    const x0 = x(start);
    const w = Math.max(3, x(stop) - x0);
    return html`<g class="${cls}" data-kind="${s.kind}" data-step="${s.stepId}">${title}<rect x="${x0.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${BAR_H}" rx="2"></rect>${failed ? html`<rect class="hatch" x="${x0.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${BAR_H}" rx="2"></rect>` : ''}</g>`;
  });

  // The header row holds the start time on the left and the end (or now) marker's label, which
  // sits right-aligned on its line unless that would run into the start time: then it moves right.
  const startLabel = `${formatUtc(new Date(t0).toISOString(), { date: false })} UTC`;
  const markerLabelX = (lineX: number, label: string) => Math.min(WIDTH - 2, Math.max(lineX, LABEL_W + textWidth(startLabel) + GAP + textWidth(label))).toFixed(1);
  const markers: SafeHtml[] = [];
  if (!view.run.finishedAt) {
    const nx = x(now);
    markers.push(html`<g class="now"><line x1="${nx.toFixed(1)}" x2="${nx.toFixed(1)}" y1="${AXIS_H - 4}" y2="${height - 4}"></line><text x="${markerLabelX(nx, 'now')}" y="12" text-anchor="end">now</text></g>`);
  } else {
    const fx = x(ms(view.run.finishedAt));
    const label = `${view.run.status} ${formatUtc(view.run.finishedAt, { date: false })} UTC`;
    markers.push(html`<g class="end"><line x1="${fx.toFixed(1)}" x2="${fx.toFixed(1)}" y1="${AXIS_H - 4}" y2="${height - 4}"></line><text x="${markerLabelX(fx, label)}" y="12" text-anchor="end">${label}</text></g>`);
  }

  const description = `${lanes.length} steps from ${formatUtc(new Date(t0).toISOString())} UTC over ${formatDuration(span)}. ${view.spans.filter((s) => s.kind !== 'policy').map((s) => s.label).join('. ')}`;
  return html`<svg class="time-axis" role="img" aria-labelledby="axis-title axis-desc" viewBox="0 0 ${WIDTH} ${height}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">
<title id="axis-title">Steps of run ${view.run.id} on a time axis</title>
<desc id="axis-desc">${description}</desc>
${raw('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="rgba(255,255,255,0.55)"></rect></pattern></defs>')}
<text class="axis-start" x="${LABEL_W}" y="12">${startLabel}</text>
${laneRows}
${ticks}
${shapes}
${markers}
</svg>`;
}
