/**
 * The Slack concern wired together: a Bolt app (HTTP through our fastify
 * server, or Socket Mode when SLACK_APP_TOKEN is set), the projector that
 * turns timelines into messages, and the outbox sender that posts them.
 */
import { randomUUID } from 'node:crypto';
import { App, LogLevel, SocketModeReceiver, webApi, type Logger as BoltLogger, type Receiver } from '@slack/bolt';
import cron, { type ScheduledTask } from 'node-cron';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AccessDeniedError, ConflictError, NotFoundError, coerceError } from '../errors.js';
import { handleCommand, slackIdentity } from './commands.js';
import { OutboxSender, enqueue } from './outbox.js';
import { Projector } from './projector.js';
import * as Q from './queries.js';
import { FastifyReceiver, SLACK_EVENTS_PATH } from './receiver.js';
import { APPROVE_ACTION, COMMAND_HELP, REJECT_ACTION, escapeText } from './render.js';
import type { SlackOptions, SlackService } from './types.js';

/** Slack's Web API base URL for the clients: must end with '/'. */
export function slackApiUrl(configured: string | undefined): string | undefined {
  if (!configured) return undefined;
  return configured.endsWith('/') ? configured : `${configured}/`;
}

/** Bolt and the Slack SDK log through pino, under component=slack. */
export function boltLogger(logger: Logger, name = 'bolt'): BoltLogger {
  let level = LogLevel.INFO;
  const log = logger.child({ component: 'slack', lib: name });
  const text = (msg: unknown[]) => msg.map((m) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m))).join(' ');
  return {
    debug: (...msg: unknown[]) => log.debug(text(msg)),
    info: (...msg: unknown[]) => log.info(text(msg)),
    warn: (...msg: unknown[]) => log.warn(text(msg)),
    error: (...msg: unknown[]) => log.error(text(msg)),
    setLevel: (l: LogLevel) => void (level = l),
    getLevel: () => level,
    setName: () => {},
  };
}

/** Slack on: built by createSlack (index.ts), which imports this module only when Slack is configured. */
export class SlackApp implements SlackService {
  readonly mode: 'http' | 'socket';
  private readonly log: Logger;
  private readonly client: InstanceType<typeof webApi.WebClient>;
  private readonly sender: OutboxSender;
  private readonly projector: Projector;
  private readonly bolt: App;
  private readonly httpReceiver: FastifyReceiver | undefined;
  private readonly jobs: ScheduledTask[] = [];
  private identity: { botUserId?: string; botId?: string } = {};
  private stopped = false;
  private identityTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SlackOptions) {
    const { config, logger, pool } = options;
    const slack = config.slack;
    this.log = logger.child({ component: 'slack' });
    this.mode = slack.appToken ? 'socket' : 'http';
    const apiUrl = slackApiUrl(slack.apiUrl);
    // The outbox owns retries: the client fails fast, on 429 too, and the row is rescheduled.
    this.client = new webApi.WebClient(slack.botToken, {
      ...(apiUrl && { slackApiUrl: apiUrl }),
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: 10_000,
      logger: boltLogger(logger, 'web-api'),
    });
    this.sender = new OutboxSender({ pool, client: this.client, logger });
    this.projector = new Projector({ pool, logger, publicUrl: config.publicUrl, defaultChannel: slack.defaultChannel, onEnqueued: () => this.sender.poke() });

    let receiver: Receiver;
    if (this.mode === 'socket') {
      receiver = new SocketModeReceiver({
        appToken: slack.appToken!,
        logger: boltLogger(logger, 'socket-mode'),
        autoReconnectEnabled: true,
        installerOptions: { clientOptions: { ...(apiUrl && { slackApiUrl: apiUrl }) } },
      });
    } else {
      this.httpReceiver = new FastifyReceiver({ signingSecret: slack.signingSecret!, pool, logger: this.log, ...(options.now && { now: options.now }) });
      receiver = this.httpReceiver;
    }
    this.bolt = new App({
      receiver,
      logger: boltLogger(logger),
      // Our own authorize: no auth.test per event, and no start-up failure when Slack is down.
      authorize: async () => ({ botToken: slack.botToken!, ...this.identity }),
      clientOptions: { ...(apiUrl && { slackApiUrl: apiUrl }), retryConfig: { retries: 0 } },
      ignoreSelf: true,
    });
    this.listen();
    options.engine.onEvent((runId) => this.projector.schedule(runId));
  }

  registerRoutes(server: FastifyInstance): void {
    if (this.httpReceiver) this.httpReceiver.register(server);
    else server.post(SLACK_EVENTS_PATH, async (_request, reply) => reply.code(404).send({ error: 'Slack runs in Socket Mode (SLACK_APP_TOKEN is set); there is no HTTP endpoint' }));
  }

  async start(): Promise<void> {
    this.sender.start();
    void this.learnIdentity(0);
    // Catch-up: a run whose events were committed by another replica, by ingest, or just before a
    // crash still gets its messages. The timeline in Postgres is the source; this only looks at it.
    this.jobs.push(
      cron.schedule('*/2 * * * * *', () => this.projector.catchUp().catch((err) => this.log.warn({ err: coerceError(err).message }, 'Slack catch-up failed')), {
        name: 'firebreak-slack-catch-up',
        noOverlap: true,
        suppressMissedWarning: true,
      }),
      cron.schedule('17 */10 * * * *', () => this.prune(), { name: 'firebreak-slack-prune', noOverlap: true, suppressMissedWarning: true }),
    );
    void this.projector.catchUp().catch(() => {});
    if (this.mode === 'socket') {
      // Connecting retries on its own for as long as it takes; the server does not wait for it.
      this.bolt.start().then(
        () => this.log.info('Slack Socket Mode connected'),
        (err) => this.log.error({ err: coerceError(err).message }, 'Slack Socket Mode could not connect'),
      );
    }
    this.log.info({ mode: this.mode }, 'Slack is on');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.identityTimer);
    for (const job of this.jobs) await job.destroy();
    if (this.mode === 'socket') await this.bolt.stop().catch(() => {});
    await this.projector.idle();
    await this.sender.stop();
  }

  private async prune(): Promise<void> {
    await this.options.pool.query(Q.PRUNE_SIGNATURES).catch(() => {});
    await this.options.pool.query(Q.PRUNE_OUTBOX).catch(() => {});
  }

  /** auth.test once, retried in the background: who "self" is, for Bolt's ignoreSelf. */
  private async learnIdentity(attempt: number): Promise<void> {
    if (this.stopped) return;
    try {
      const res = await this.client.auth.test();
      this.identity = { ...(res.user_id && { botUserId: res.user_id }), ...(res.bot_id && { botId: res.bot_id }) };
      this.log.info({ team: res.team, botUserId: res.user_id }, 'Slack token works');
    } catch (err) {
      const delay = Math.min(60_000, 1_000 * 2 ** attempt);
      this.log.warn({ err: coerceError(err).message, retryInMs: delay }, 'Slack auth.test failed; messages wait in the outbox meanwhile');
      this.identityTimer = setTimeout(() => void this.learnIdentity(attempt + 1), delay);
      this.identityTimer.unref();
    }
  }

  private ephemeral(channel: string | undefined, user: string | undefined, text: string, threadTs?: string): Promise<void> {
    if (!channel || !user) return Promise.resolve();
    return enqueue(this.options.pool, { kind: 'ephemeral', method: 'chat.postEphemeral', threadKey: `ephemeral:${randomUUID()}`, payload: { channel, user, text, ...(threadTs && { threadTs }) } }).then(() => this.sender.poke());
  }

  private listen(): void {
    const { engine } = this.options;
    this.bolt.action(new RegExp(`^(${APPROVE_ACTION}|${REJECT_ACTION})$`), async ({ ack, body, action }) => {
      await ack();
      const b = body as { user?: { id?: string }; channel?: { id?: string }; message?: { ts?: string; thread_ts?: string }; container?: { channel_id?: string; thread_ts?: string } };
      const a = action as { action_id?: string; value?: string };
      const userId = b.user?.id;
      const channel = b.channel?.id ?? b.container?.channel_id;
      const threadTs = b.message?.thread_ts ?? b.container?.thread_ts;
      if (!userId || !a.value) return;
      const decision = a.action_id === APPROVE_ACTION ? 'approve' : 'reject';
      const log = this.log.child({ approvalId: a.value, user: userId, decision });
      try {
        // The verified Slack user id is the identity; firebreak/authorize, then firebreak/approve, judge it.
        const result = await this.options.access.answerApproval(engine, slackIdentity(userId), { approvalId: a.value, decision });
        if (result.outcome === 'refused') {
          log.info({ reason: result.reason }, 'Slack click refused by policy');
          await this.ephemeral(channel, userId, `⛔ You cannot ${decision} this step: ${escapeText(result.reason)}`, threadTs);
        } else if (result.outcome === 'recorded') {
          await this.ephemeral(channel, userId, `🗳 Your approval is recorded (${result.approvals} of ${result.minApprovals}).`, threadTs);
        }
        // approved / rejected: the message itself is updated through the projector.
      } catch (err) {
        if (err instanceof AccessDeniedError) {
          log.info({ reasons: err.reasons }, 'Slack click refused by policy');
          await this.ephemeral(channel, userId, `⛔ You cannot ${decision} this step: ${escapeText(err.reasons.join('; '))}`, threadTs);
          return;
        }
        if (err instanceof ConflictError || err instanceof NotFoundError) {
          await this.ephemeral(channel, userId, `ℹ️ ${escapeText(err.message)}`, threadTs);
          return;
        }
        log.error({ err: coerceError(err).message }, 'answering an approval from Slack failed');
        await this.ephemeral(channel, userId, '⚠️ Firebreak could not record your answer right now; please try again.', threadTs).catch(() => {});
      }
    });

    this.bolt.command(/^\/firebreak/, async ({ ack, command, respond }) => {
      const work = handleCommand(
        { pool: this.options.pool, engine, access: this.options.access, ...(this.options.silences && { silences: this.options.silences }), ...(this.options.automation && { automation: this.options.automation }), logger: this.log, publicUrl: this.options.config.publicUrl },
        { text: command.text ?? '', userId: command.user_id },
      );
      // Slack wants the ack within 3 s; a slow answer follows through response_url.
      const quick = await Promise.race([work, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2_000).unref())]);
      if (quick) return ack(quick);
      await ack({ response_type: 'ephemeral', text: '⏳ Working on it…' });
      await respond(await work);
    });

    this.bolt.event('app_mention', async ({ event }) => {
      const e = event as { channel?: string; ts?: string; thread_ts?: string };
      if (!e.channel) return;
      await enqueue(this.options.pool, {
        kind: 'mention-help',
        method: 'chat.postMessage',
        threadKey: `mention:${randomUUID()}`,
        payload: { channel: e.channel, text: COMMAND_HELP },
      });
      this.sender.poke();
    });

    this.bolt.error(async (err) => {
      this.log.error({ err: coerceError(err).message }, 'Slack app error');
    });
  }
}
