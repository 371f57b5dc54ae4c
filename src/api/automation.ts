/**
 * The automation safety rails over HTTP (docs/safety-rails.md): the kill
 * switch (`POST /api/pause`, `POST /api/resume`) and what is paused, by whom
 * and why (`GET /api/automation`). Acts are authorized by firebreak/authorize
 * as the authenticated identity, which is also the recorded actor.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { reconcileUser, requireIdentity, type Identity } from '../access/index.js';
import { parseJsonBody, parseWith } from '../ingest/index.js';
import type { Automation } from '../rails/index.js';
import { sendError } from './http.js';

const bodyUser = z.string().trim().min(1).max(200).optional();
const switchBody = z
  .object({
    /** Omitted or null: all automation. */
    playbook: z.string().trim().min(1).max(100).nullable().optional(),
    reason: z.string().trim().max(2_000).optional(),
    user: bodyUser,
  })
  .default({});

function body(request: FastifyRequest): unknown {
  const raw = request.body as Buffer | undefined;
  return raw && raw.length > 0 ? parseJsonBody(raw) : {};
}

function who(request: FastifyRequest, user: string | undefined): Identity {
  return reconcileUser(requireIdentity(request), user);
}

export function registerAutomationApi(app: FastifyInstance, automation: Automation): void {
  const read = { config: { access: 'read' as const } };
  const act = { config: { access: 'act' as const } };
  app.get('/api/automation', read, async (_request, reply) => {
    try {
      return await automation.status();
    } catch (err) {
      return sendError(reply, err);
    }
  });
  app.post('/api/pause', act, async (request, reply) => {
    try {
      const b = parseWith(switchBody, body(request), 'pause request');
      const { pause, alreadyPaused } = await automation.pause(who(request, b.user), { playbook: b.playbook ?? null, ...(b.reason !== undefined && { reason: b.reason }) });
      return reply.code(alreadyPaused ? 200 : 201).send({ paused: true, alreadyPaused, pause, automation: await automation.status() });
    } catch (err) {
      return sendError(reply, err);
    }
  });
  app.post('/api/resume', act, async (request, reply) => {
    try {
      const b = parseWith(switchBody, body(request), 'resume request');
      const { resumed, stillPaused } = await automation.resume(who(request, b.user), { playbook: b.playbook ?? null, ...(b.reason !== undefined && { reason: b.reason }) });
      return reply.code(200).send({ resumed: resumed !== null, pause: resumed, stillPaused, automation: await automation.status() });
    } catch (err) {
      return sendError(reply, err);
    }
  });
}
