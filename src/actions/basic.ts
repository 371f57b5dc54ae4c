import { z } from 'zod';
import { durationSchema, formatDuration } from './duration.js';
import { templateField } from '../expr/index.js';
import { defineAction, done, type ActionResult } from './types.js';

/** A durable pause: the engine turns each `poll` into a database timer, so nothing sleeps in memory. */
export const waitAction = defineAction({
  name: 'wait',
  input: z.strictObject({ duration: durationSchema }),
  sideEffect: () => false,
  async run(input, ctx): Promise<ActionResult> {
    const saved = (ctx.state as { until?: unknown } | undefined)?.until;
    const until = typeof saved === 'number' ? saved : ctx.stepStartedAt + input.duration;
    const now = ctx.now();
    if (now >= until) return done({ waitedMs: now - ctx.stepStartedAt });
    return { kind: 'poll', afterMs: until - now, state: { until }, progress: `waiting ${formatDuration(until - now)} more` };
  },
});

export const noteAction = defineAction({
  name: 'note',
  input: z.strictObject({ text: z.string(), data: z.unknown().optional() }),
  sideEffect: () => false,
  async run(input) {
    return done({ text: input.text, data: input.data ?? null });
  },
});

// Slack mrkdwn: each ${{ }} has & < > escaped, so alert text cannot add links, mentions or @channel.
const slackInput = z.strictObject({
  channel: z.string().min(1).optional(),
  text: templateField(z.string().min(1, 'must not be empty'), 'mrkdwn'),
  blocks: templateField(z.array(z.record(z.string(), z.unknown())), 'mrkdwn').optional(),
});

/** Records the message; posting goes through the Slack outbox so a Slack outage loses nothing. */
export const slackMessage = defineAction({
  name: 'slack.message',
  input: slackInput,
  sideEffect: () => true,
  target: (input) => input.channel ?? 'default',
  describe: (input) => ({ channel: input.channel ?? null, text: input.text, ...(input.blocks ? { blocks: input.blocks } : {}) }),
  async run(input) {
    return done({ channel: input.channel ?? null, text: input.text, posted: false });
  },
});
