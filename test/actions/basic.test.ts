import { describe, expect, it } from 'vitest';
import { createActionRegistry, describeCall } from '../../src/actions/index.js';
import { call, makeCtx } from './helpers.js';

const registry = createActionRegistry();
const wait = registry.get('wait')!;
const note = registry.get('note')!;
const slack = registry.get('slack.message')!;

describe('wait', () => {
  const start = 5_000_000;

  it('first asks to be called back after the duration, then finishes', async () => {
    const first = await call(wait, { duration: '5m' }, makeCtx({ stepStartedAt: start, now: () => start }));
    expect(first).toMatchObject({ kind: 'poll', afterMs: 300_000, state: { until: start + 300_000 } });
    const state = (first as { state: unknown }).state;
    const done = await call(wait, { duration: '5m' }, makeCtx({ state, stepStartedAt: start, now: () => start + 300_001 }));
    expect(done).toEqual({ kind: 'done', output: { waitedMs: 300_001 } });
  });

  it('polls again for the remainder when woken early (e.g. after a restart)', async () => {
    const r = await call(wait, { duration: 30_000 }, makeCtx({ state: { until: start + 30_000 }, stepStartedAt: start, now: () => start + 20_000 }));
    expect(r).toMatchObject({ kind: 'poll', afterMs: 10_000, state: { until: start + 30_000 } });
  });

  it('finishes at once for a zero duration and is not a side effect', async () => {
    expect(await call(wait, { duration: 0 }, makeCtx())).toMatchObject({ kind: 'done' });
    expect(wait.sideEffect(wait.input.parse({ duration: '1s' }))).toBe(false);
  });
});

describe('note', () => {
  it('outputs its text and data', async () => {
    expect(await call(note, { text: 'checked', data: { a: [1] } }, makeCtx())).toEqual({ kind: 'done', output: { text: 'checked', data: { a: [1] } } });
    expect(await call(note, { text: 'plain' }, makeCtx())).toEqual({ kind: 'done', output: { text: 'plain', data: null } });
    expect(note.sideEffect(note.input.parse({ text: 'x' }))).toBe(false);
  });
});

describe('slack.message', () => {
  it('records the message without posting it, as a side effect', async () => {
    expect(await call(slack, { channel: '#inc-api', text: 'rolling back' }, makeCtx())).toEqual({
      kind: 'done',
      output: { channel: '#inc-api', text: 'rolling back', posted: false },
    });
    expect(slack.sideEffect(slack.input.parse({ text: 'x' }))).toBe(true);
    expect(describeCall(slack, { channel: '#inc-api', text: 'rolling back' })).toEqual({ channel: '#inc-api', text: 'rolling back' });
  });
});
