/**
 * Slack: approvals with buttons, a thread per run, `/firebreak`, all posted
 * through a durable outbox. This file is the folder's only public surface.
 * Bolt and the Web API client are loaded only when Slack is configured.
 */
import { SLACK_EVENTS_PATH } from './paths.js';
import type { SlackOptions, SlackService } from './types.js';

export type { SlackOptions, SlackService } from './types.js';
export { SLACK_EVENTS_PATH } from './paths.js';
export { APPROVE_ACTION, REJECT_ACTION } from './render.js';
export { parseRunCommand, slackIdentity, tokenize } from './commands.js';

const offService = (reason: string): SlackService => ({
  mode: 'off',
  registerRoutes(server) {
    server.post(SLACK_EVENTS_PATH, async (_request, reply) => reply.code(404).send({ error: reason }));
  },
  async start() {},
  async stop() {},
});

/** The Slack service for this config: HTTP or Socket Mode, or an inert one (404 at /slack/events) when Slack is off. */
export async function createSlack(options: SlackOptions): Promise<SlackService> {
  if (!options.config.slack.botToken) return offService('Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)');
  const { SlackApp } = await import('./service.js');
  return new SlackApp(options);
}
