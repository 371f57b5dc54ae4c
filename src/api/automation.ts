/**
 * The automation safety rails over HTTP (docs/safety-rails.md): the kill
 * switch (`POST /api/pause`, `POST /api/resume`) and what is paused, by whom
 * and why (`GET /api/automation`). Acts are authorized by firebreak/authorize
 * as the authenticated identity, which is also the recorded actor.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseWith } from '../ingest/index.js';
import type { Automation } from '../rails/index.js';
import { ACT, actingIdentity, handle, optionalBody, READ } from './http.js';

const switchBody = z
  .object({
    /** Omitted or null: all automation. */
    playbook: z.string().trim().min(1).max(100).nullable().optional(),
    reason: z.string().trim().max(2_000).optional(),
    // Never an identity: when given it must name who authenticated (else 400).
    user: z.string().trim().min(1).max(200).optional(),
  })
  .default({});

export function registerAutomationApi(app: FastifyInstance, automation: Automation): void {
  app.get('/api/automation', READ, handle(async () => automation.status()));
  app.post('/api/pause', ACT, handle(async (request, reply) => {
    const b = parseWith(switchBody, optionalBody(request), 'pause request');
    const { pause, alreadyPaused } = await automation.pause(actingIdentity(request, b), { playbook: b.playbook ?? null, ...(b.reason !== undefined && { reason: b.reason }) });
    return reply.code(alreadyPaused ? 200 : 201).send({ paused: true, alreadyPaused, pause, automation: await automation.status() });
  }));
  app.post('/api/resume', ACT, handle(async (request, reply) => {
    const b = parseWith(switchBody, optionalBody(request), 'resume request');
    const { resumed, stillPaused } = await automation.resume(actingIdentity(request, b), { playbook: b.playbook ?? null, ...(b.reason !== undefined && { reason: b.reason }) });
    return reply.code(200).send({ resumed: resumed !== null, pause: resumed, stillPaused, automation: await automation.status() });
  }));
}
