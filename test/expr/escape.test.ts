import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createActionRegistry } from '../../src/actions/index.js';
import {
  EXPRESSION_LIMITS,
  ExpressionCostError,
  ExpressionError,
  WITHHELD_SECRETS,
  checkTemplateIn,
  evaluateCondition,
  evaluateExpression,
  interpolate,
  renderValue,
  templateContextAt,
  templateField,
} from '../../src/expr/index.js';

const vars = {
  alert: { labels: { service: 'checkout', path: '../../admin?x=', quote: 'x"}[5m])) * 0 or vector(1) # ', mention: '<!channel>', dots: '..', n: '0.25' }, annotations: { big: 'ab'.repeat(2_000) } },
  steps: { s: { output: { value: 0.5, vector: [{ value: 1 }, { value: 2 }] } } },
  run: { id: 'r1', params: {} },
  secrets: { TOK: 'p/ss w+rd' },
};

const fails = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('url context', () => {
  it('percent-encodes each interpolation as one path segment or one query key/value', () => {
    expect(interpolate('https://h/look/${{ alert.labels.path }}/x?q=${{ alert.labels.path }}&k=v#${{ alert.labels.service }}', vars, 'url')).toBe(
      'https://h/look/..%2F..%2Fadmin%3Fx%3D/x?q=..%2F..%2Fadmin%3Fx%3D&k=v#checkout',
    );
    expect(interpolate('https://h/t?token=${{ secrets.TOK }}', vars, 'url')).toBe('https://h/t?token=p%2Fss%20w%2Brd');
    expect(interpolate('https://${{ alert.labels.service }}.internal:8443/x', vars, 'url')).toBe('https://checkout.internal:8443/x');
  });

  it('refuses a value that becomes a "." or ".." path segment, and an interpolation before the host', () => {
    expect(fails(() => interpolate('https://h/a/${{ alert.labels.dots }}/b', vars, 'url'))).toMatch(/"\." or "\.\." segment/);
    expect(interpolate('https://h/a/v${{ alert.labels.dots }}/b', vars, 'url')).toBe('https://h/a/v../b');
    expect(fails(() => interpolate('${{ alert.labels.service }}/x', vars, 'url'))).toMatch(/cannot start a URL/);
    expect(fails(() => renderValue({ url: '${{ alert.labels.service }}' }, vars, () => 'url'))).toMatch(/cannot start a URL/);
  });

  it('lets unescaped() through, and follows where the raw text leaves the URL', () => {
    expect(interpolate('https://h/${{ unescaped(alert.labels.path) }}', vars, 'url')).toBe('https://h/../../admin?x=');
    // After an unescaped `?`, the next value is a query value.
    expect(interpolate('https://h/${{ unescaped("a?b=") }}${{ alert.labels.path }}', vars, 'url')).toBe('https://h/a?b=..%2F..%2Fadmin%3Fx%3D');
  });
});

describe('promql context', () => {
  it('escapes a value inside a string literal as that string, and regex-quotes it in =~ / !~', () => {
    expect(interpolate('up{service="${{ alert.labels.quote }}"}', vars, 'promql')).toBe('up{service="x\\"}[5m])) * 0 or vector(1) # "}');
    expect(interpolate("up{service='${{ alert.labels.quote }}'}", vars, 'promql')).toBe("up{service='x\"}[5m])) * 0 or vector(1) # '}");
    expect(interpolate("up{s='${{ \"it's\" }}'}", vars, 'promql')).toBe("up{s='it\\'s'}");
    expect(interpolate('up{s="${{ "a\\\\b\\nc" }}"}', vars, 'promql')).toBe('up{s="a\\\\b\\nc"}');
    expect(interpolate('up{s=~"${{ "a.b|c" }}"}', vars, 'promql')).toBe('up{s=~"a\\\\.b\\\\|c"}');
    expect(interpolate('up{s!~ "${{ "(x)" }}"}', vars, 'promql')).toBe('up{s!~ "\\\\(x\\\\)"}');
  });

  it('outside string literals takes numbers and durations only', () => {
    expect(interpolate('rate(x[${{ "5m" }}]) > ${{ steps.s.output.value }} * ${{ alert.labels.n }}', vars, 'promql')).toBe('rate(x[5m]) > 0.5 * 0.25');
    expect(fails(() => interpolate('x > ${{ alert.labels.quote }}', vars, 'promql'))).toMatch(/outside a PromQL string literal must be a number/);
    expect(fails(() => interpolate('x > ${{ alert.labels.service }}', vars, 'promql'))).toMatch(/must be a number/);
    // The error never quotes the value (it may be a secret).
    expect(fails(() => interpolate('x > ${{ secrets.TOK }}', vars, 'promql'))).not.toContain('p/ss');
  });

  it('refuses an interpolation in a raw (backtick) string, at validate time too', () => {
    expect(fails(() => interpolate('up{s=`${{ alert.labels.service }}`}', vars, 'promql'))).toMatch(/raw or multi-line string/);
    expect(checkTemplateIn('up{s=`${{ alert.labels.service }}`}', 'promql').errors[0]).toMatch(/raw or multi-line string/);
    // Quotes inside a # comment do not open a string.
    expect(interpolate('up # it"s\n > ${{ 1 }}', vars, 'promql')).toBe('up # it"s\n > 1');
  });
});

describe('cel context (prometheus.wait until)', () => {
  it('escapes inside strings and takes only numbers outside', () => {
    expect(interpolate('value < ${{ steps.s.output.value }}', vars, 'cel')).toBe('value < 0.5');
    expect(fails(() => interpolate('value < ${{ "1 || true" }}', vars, 'cel'))).toMatch(/outside a CEL string literal must be a number/);
    expect(interpolate('"${{ alert.labels.quote }}" != ""', vars, 'cel')).toBe('"x\\"}[5m])) * 0 or vector(1) # " != ""');
    expect(fails(() => interpolate('r"${{ alert.labels.service }}" != ""', vars, 'cel'))).toMatch(/raw or multi-line/);
  });
});

describe('mrkdwn context', () => {
  it('turns & < > into entities in values, not in the playbook text', () => {
    expect(interpolate('*<https://grafana/d|${{ alert.labels.service }}>* ${{ alert.labels.mention }} & more', vars, 'mrkdwn')).toBe('*<https://grafana/d|checkout>* &lt;!channel&gt; & more');
    expect(interpolate('${{ unescaped(alert.labels.mention) }}', vars, 'mrkdwn')).toBe('<!channel>');
    // A whole value that yields Block Kit keeps its shape, strings escaped.
    expect(renderValue({ blocks: '${{ [{"type": "section", "text": alert.labels.mention}] }}' }, vars, () => 'mrkdwn')).toEqual({ blocks: [{ type: 'section', text: '&lt;!channel&gt;' }] });
  });
});

describe('plain context', () => {
  it('keeps whole values typed and interpolates as before', () => {
    expect(renderValue({ n: '${{ steps.s.output.value }}', t: 'v=${{ steps.s.output.value }}', h: 'Bearer ${{ secrets.TOK }}' }, vars)).toEqual({ n: 0.5, t: 'v=0.5', h: 'Bearer p/ss w+rd' });
  });
});

describe('secrets', () => {
  it('are read only whole: anything else is an error at run time, and at validate time', () => {
    for (const expr of ['bytes(secrets.TOK)', 'secrets.TOK.upperAscii()', 'secrets.TOK + "x"', 'size(secrets)', 'secrets', '"TOK" in secrets', '[secrets.TOK][0]', 'has(secrets.TOK)']) {
      expect(fails(() => interpolate(`\${{ ${expr} }}`, vars)), expr).toMatch(/secrets can only be interpolated whole/);
      expect(checkTemplateIn(`\${{ ${expr} }}`, 'plain').errors[0], expr).toMatch(/secrets can only be interpolated whole/);
    }
    expect(interpolate('${{ secrets["TOK"] }}', vars)).toBe('p/ss w+rd');
    expect(fails(() => evaluateCondition('secrets.TOK == "x"', vars))).toMatch(/secrets can only be interpolated whole/);
    expect(fails(() => evaluateCondition('secrets.TOK', vars))).toMatch(/secrets can only be interpolated whole/);
    // A comprehension variable named `secrets` is not the secrets.
    expect(evaluateExpression('[1, 2].map(secrets, secrets * 2)', vars)).toEqual([2, 4]);
  });

  it('render as a marker when withheld (playbooks sent with a request), and say when one is not set', () => {
    expect(interpolate('Bearer ${{ secrets.TOK }}', { ...vars, secrets: WITHHELD_SECRETS })).toBe('Bearer [withheld secret TOK]');
    expect(fails(() => interpolate('${{ secrets.NOPE }}', vars))).toMatch(/secret NOPE is not set \(FIREBREAK_SECRET_NOPE\)/);
  });
});

describe('unescaped()', () => {
  it('must wrap a whole interpolation, and validate warns where it turns escaping off', () => {
    expect(checkTemplateIn('x ${{ size(unescaped(alert.labels.x)) }}', 'url').errors[0]).toMatch(/must wrap the whole interpolation/);
    expect(checkTemplateIn('https://h/${{ unescaped(alert.labels.x) }}', 'url')).toEqual({ errors: [], warnings: [expect.stringMatching(/turns off url escaping/)] });
    // In a plain field there is nothing to turn off.
    expect(checkTemplateIn('${{ unescaped(alert.labels.x) }}', 'plain')).toEqual({ errors: [], warnings: [] });
    expect(fails(() => evaluateExpression('unescaped(alert.labels.service)', vars))).toMatch(/can only wrap a whole/);
  });
});

describe('limits', () => {
  it('stops an expression that would run away, with a typed error, in bounded time', () => {
    const started = Date.now();
    const err = (() => {
      try {
        evaluateExpression('alert.annotations.big.split("").map(a, alert.annotations.big.split("").map(b, a + b)).size()', vars);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ExpressionCostError);
    expect(err).toBeInstanceOf(ExpressionError);
    expect((err as Error).message).toMatch(/expression exceeded its cost limit/);
    // Without the limit this is 16 million iterations (minutes); a loose bound, not a benchmark.
    expect(Date.now() - started).toBeLessThan(5_000);
    // A cost error hidden behind `|| true` still counts.
    expect(() => evaluateCondition('alert.annotations.big.split("").all(a, alert.annotations.big.split("").all(b, b != "")) || true', vars)).toThrow(ExpressionCostError);
  });

  it('charges replace() before it builds its result, and keeps CEL semantics', () => {
    expect(() => evaluateExpression(`"abcd"${'.replace("a", "aaaa")'.repeat(14)}.size()`, vars)).toThrow(ExpressionCostError);
    expect(evaluateExpression('"a-b-c".replace("-", "+")', vars)).toBe('a+b+c');
    expect(evaluateExpression('"a-b-c".replace("-", "+", 1)', vars)).toBe('a+b-c');
    expect(evaluateExpression('"ab".replace("", "/")', vars)).toBe('/a/b/');
  });

  it('charges what a function walks: `x in big` inside a macro cannot do a million comparisons per step', () => {
    const big = { ...vars, steps: { s: { output: { list: Array.from({ length: 100_000 }, (_, i) => i), few: [1, 2, 3] } } } };
    expect(() => evaluateExpression('steps.s.output.few.map(x, steps.s.output.list.map(y, y in steps.s.output.list))', big)).toThrow(ExpressionCostError);
    expect(() => evaluateExpression('[1, 2, 3, 4, 5].map(x, x in steps.s.output.list)', big)).toThrow(ExpressionCostError);
    // Indexing and size() do not walk their operand.
    expect(evaluateExpression('steps.s.output.few.map(i, steps.s.output.list[i] + size(steps.s.output.list))', big)).toEqual([100_001, 100_002, 100_003]);
  });

  it('leaves everyday expressions alone', () => {
    expect(evaluateCondition('steps.s.output.vector.exists(v, v.value > 1) && steps.s.output.value < 1', vars)).toBe(true);
    expect(evaluateExpression('steps.s.output.vector.map(v, v.value * 2)', vars)).toEqual([2, 4]);
  });

  it('refuses oversized expressions statically, and meters nesting at run time', () => {
    expect(checkTemplateIn(`\${{ ${'1 + '.repeat(3_000)}1 }}`, 'plain').errors[0]).toMatch(/too large/);
    expect(checkTemplateIn(`\${{ "${'x'.repeat(EXPRESSION_LIMITS.maxLength)}" }}`, 'plain').errors[0]).toMatch(/too long/);
    const ten = '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]';
    // Six macros deep over ten items: a million iterations.
    const nested = `${ten}.map(a, ${ten}.map(b, ${ten}.map(c, ${ten}.map(d, ${ten}.map(e, ${ten}.map(f, a + f))))))`;
    expect(checkTemplateIn(`\${{ ${nested} }}`, 'plain').errors).toEqual([]);
    expect(() => evaluateExpression(nested, vars)).toThrow(ExpressionCostError);
    expect(evaluateExpression(`${ten}.map(a, ${ten}.map(b, a * b)).size()`, vars)).toBe(10);
  });
});

describe('contexts declared by action input schemas', () => {
  it('reads .meta({ template }) through wrappers, records and arrays', () => {
    const schema = z.strictObject({
      url: templateField(z.string().refine(() => true), 'url').default('x'),
      blocks: templateField(z.array(z.record(z.string(), z.unknown())), 'mrkdwn').optional(),
      headers: z.record(z.string(), z.string()).optional(),
    });
    expect(templateContextAt(schema, ['url'])).toBe('url');
    expect(templateContextAt(schema, ['blocks', 0, 'text', 'text'])).toBe('mrkdwn');
    expect(templateContextAt(schema, ['headers', 'Authorization'])).toBe('plain');
    expect(templateContextAt(schema, ['nope'])).toBe('plain');
  });

  it('covers the built-in actions', () => {
    const actions = createActionRegistry();
    const at = (action: string, path: string[]) => templateContextAt(actions.get(action)!.input, path);
    expect(at('http.request', ['url'])).toBe('url');
    expect(at('http.request', ['headers', 'Authorization'])).toBe('plain');
    expect(at('http.request', ['body', 'x'])).toBe('plain');
    expect(at('prometheus.query', ['url'])).toBe('url');
    expect(at('prometheus.query', ['query'])).toBe('promql');
    expect(at('prometheus.wait', ['query'])).toBe('promql');
    expect(at('prometheus.wait', ['until'])).toBe('cel');
    expect(at('slack.message', ['text'])).toBe('mrkdwn');
    expect(at('slack.message', ['blocks', '0', 'text'])).toBe('mrkdwn');
    expect(at('slack.message', ['channel'])).toBe('plain');
    expect(at('note', ['text'])).toBe('plain');
    expect(at('exec', ['args', '0'])).toBe('plain');
  });
});
