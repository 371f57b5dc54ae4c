import type { Automation } from '../rails/index.js';
import type { FastifyInstance } from 'fastify';
import type { Access } from '../access/index.js';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { Engine } from '../engine/index.js';
import type { PolicyGate } from '../policy/index.js';
import type { Silences } from '../rails/index.js';
import type { Pool } from '../store/index.js';
import type { Timeline } from '../timeline/index.js';

export interface SlackOptions {
  config: Config;
  logger: Logger;
  pool: Pool;
  engine: Engine;
  timeline: Timeline;
  policy: () => PolicyGate;
  /** Acts from Slack (`/firebreak run|abort`, button clicks) are authorized and recorded here, as `slack:<user id>`. */
  access: Access;
  /** The kill switch (`/firebreak pause|resume`). */
  automation?: Automation;
  /** `/firebreak silence ...`: the same acts as the API, as `slack:<user id>`. */
  silences?: Silences;
  now?: () => number;
}

export interface SlackService {
  /** `off` when SLACK_BOT_TOKEN is unset. */
  readonly mode: 'off' | 'http' | 'socket';
  /** Adds POST /slack/events (HTTP mode; otherwise a 404 saying why). Call while building the server. */
  registerRoutes(server: FastifyInstance): void;
  /** Connects (Socket Mode) and starts the sender and catch-up jobs. Never waits for Slack. */
  start(): Promise<void>;
  stop(): Promise<void>;
}
