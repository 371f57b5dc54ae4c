import { describe, expect, it } from 'vitest';
import { evaluateCondition, interpolate, renderValue } from '../../src/expr/index.js';
import { formatProblem, parsePlaybookSource, type Playbook } from '../../src/playbooks/index.js';

const ACTIONS = new Set(['http.request', 'prometheus.query', 'prometheus.wait', 'note']);

function load(yaml: string): Playbook {
  const { playbook, problems } = parsePlaybookSource('t.yaml', yaml, ACTIONS);
  expect(problems.map(formatProblem)).toEqual([]);
  return playbook!;
}

// The example from the "Playbooks" section of PRODUCT.md, verbatim. Its compensate
// block puts ${{ }} inside a YAML flow map, which plain YAML cannot parse.
const PRODUCT_EXAMPLE = `
name: high-error-rate                 # unique; [a-z0-9-]
description: Roll back a service whose 5xx rate is high
triggers:
  - source: alertmanager              # optional: any source
    matchers:                         # Alertmanager matcher syntax, all must hold
      - alertname="HighErrorRate"
      - severity=~"critical|page"
concurrency:                          # at most \`limit\` active runs per key
  key: \${{ alert.labels.service }}
  limit: 1
channel: "#inc-\${{ alert.labels.service }}"
steps:
  - id: error_rate                    # gather context
    action: prometheus.query
    with:
      url: http://prometheus:9090
      query: sum(rate(http_requests_total{service="\${{ alert.labels.service }}",code=~"5.."}[5m]))
  - id: rollback
    action: http.request
    impact: high                      # input to the policy; \`low\` by default
    when: steps.error_rate.output.value > 0.05
    with:
      method: POST
      url: https://deploy.internal/api/services/\${{ alert.labels.service }}/rollback
      headers: { Authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}" }
    timeout: 2m
    retry: { attempts: 3, backoff: 10s }
    compensate:                       # run, newest first, if the run aborts later
      action: http.request
      with: { method: POST, url: https://deploy.internal/api/services/\${{ alert.labels.service }}/roll-forward }
  - id: verify
    action: prometheus.wait
    with: { url: http://prometheus:9090, query: "...", until: "value < 0.01", timeout: 10m }
`;

const alert = { labels: { service: 'checkout', severity: 'critical' }, annotations: {} };

describe('expressions in playbooks', () => {
  it('the PRODUCT.md example loads, and its templates render', () => {
    const pb = load(PRODUCT_EXAMPLE);
    const [query, rollback] = pb.steps;
    const vars = { alert, secrets: { DEPLOY_TOKEN: 'tok' }, run: { id: 'r1' }, steps: { error_rate: { output: { value: 0.08 } } } };
    expect(interpolate(pb.concurrency!.key, vars)).toBe('checkout');
    expect(interpolate(pb.channel!, vars)).toBe('#inc-checkout');
    expect(renderValue(query!.with, vars)).toEqual({ url: 'http://prometheus:9090', query: 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m]))' });
    expect(renderValue(rollback!.compensate!.with, vars)).toEqual({ method: 'POST', url: 'https://deploy.internal/api/services/checkout/roll-forward' });
    expect(renderValue(rollback!.with, vars)).toMatchObject({ headers: { Authorization: 'Bearer tok' } });
    expect(rollback).toMatchObject({ timeoutMs: 120_000, retry: { attempts: 3, backoffMs: 10_000 } });
  });

  it('a flow map that is broken for another reason is still a YAML error', () => {
    const { problems } = parsePlaybookSource('t.yaml', 'name: x\nsteps:\n  - id: a\n    action: note\n    with: { text: ${{ alert.labels.a }}, }, }\n', ACTIONS);
    expect(problems[0]?.message).toMatch(/^YAML: /);
    expect(problems[0]?.line).toBe(5);
  });

  it('when: works with JSON numbers against int and double literals', () => {
    const pb = load(`
name: t
steps:
  - { id: q, action: prometheus.query, with: { url: "http://p:9090", query: up } }
  - { id: a, action: note, when: steps.q.output.value > 0, with: { text: a } }
  - { id: b, action: note, when: steps.q.output.value > 0.05, with: { text: b } }
  - { id: c, action: note, when: "steps.q.output.value == 2 && size(alert.labels) > 0", with: { text: c } }
  - { id: d, action: note, when: "\${{ steps.q.output.value * 10 >= 20 }}", with: { text: d } }
`);
    const whens = pb.steps.slice(1).map((s) => s.when!);
    expect(whens[3]).toBe('steps.q.output.value * 10 >= 20');
    const at = (value: number) => whens.map((w) => evaluateCondition(w, { alert, steps: { q: { output: { value } } } }));
    expect(at(2)).toEqual([true, true, true, true]);
    expect(at(0.03)).toEqual([true, false, false, false]);
    expect(at(0)).toEqual([false, false, false, false]);
  });

  it('rendering keeps the type of a whole-string expression and stringifies the rest', () => {
    const pb = load(`
name: t
steps:
  - id: q
    action: prometheus.query
    with: { url: "http://p:9090", query: up }
  - id: n
    action: note
    with:
      text: "\${{ steps.q.output.value }} replicas for \${{ alert.labels.service }}"
      data:
        replicas: \${{ steps.q.output.value + 1 }}
        ratio: \${{ steps.q.output.value / 4 }}
        firing: \${{ steps.q.output.value > 1 }}
        labels: \${{ alert.labels }}
        literal: 5
`);
    const vars = { alert, steps: { q: { output: { value: 3 } } } };
    expect(renderValue(pb.steps[1]!.with, vars)).toEqual({
      text: '3 replicas for checkout',
      data: { replicas: 4, ratio: 0.75, firing: true, labels: alert.labels, literal: 5 },
    });
  });
});
