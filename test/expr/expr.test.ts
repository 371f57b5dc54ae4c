import { describe, expect, it } from 'vitest';
import {
  ExpressionError,
  checkExpression,
  checkTemplate,
  evaluateCondition,
  evaluateExpression,
  interpolate,
  referencedSteps,
  renderValue,
} from '../../src/expr/index.js';

const vars = {
  alert: { labels: { service: 'checkout', severity: 'critical', 'app.kubernetes.io/name': 'web' }, annotations: {} },
  steps: { error_rate: { output: { value: 0.08, series: [{ v: 1 }, { v: 2 }] } }, count: { output: { value: 3 } } },
  secrets: { DEPLOY_TOKEN: 's3cret' },
  run: { id: 'r1', trigger: 'alert' },
};

describe('evaluateExpression', () => {
  it('reads plain JS objects as CEL maps', () => {
    expect(evaluateExpression('alert.labels.service', vars)).toBe('checkout');
    expect(evaluateExpression('secrets.DEPLOY_TOKEN', vars)).toBe('s3cret');
    expect(evaluateExpression("alert.labels['app.kubernetes.io/name']", vars)).toBe('web');
  });

  it('compares JS numbers with int and double literals', () => {
    expect(evaluateCondition('steps.error_rate.output.value > 0.05', vars)).toBe(true);
    expect(evaluateCondition('steps.error_rate.output.value > 0', vars)).toBe(true);
    expect(evaluateCondition('steps.count.output.value == 3', vars)).toBe(true);
    expect(evaluateCondition('steps.count.output.value >= 3.5', vars)).toBe(false);
    expect(evaluateCondition('size(alert.labels) > 0', vars)).toBe(true);
  });

  it('allows arithmetic mixing JSON numbers and int literals', () => {
    expect(evaluateExpression('steps.error_rate.output.value * 100', vars)).toBeCloseTo(8);
    expect(evaluateExpression('steps.count.output.value + 1', vars)).toBe(4);
    expect(evaluateExpression('1 + 2', vars)).toBe(3); // CEL int comes back as a JS number
  });

  it('returns lists and maps as plain JS', () => {
    expect(evaluateExpression('steps.error_rate.output.series.map(s, s.v * 2)', vars)).toEqual([2, 4]);
    expect(evaluateExpression("{'a': [1, 'x']}", vars)).toEqual({ a: [1, 'x'] });
    expect(evaluateExpression("'checkout'.upperAscii()", vars)).toBe('CHECKOUT');
  });

  it('names the missing key and the object that lacks it', () => {
    expect(() => evaluateExpression('alert.labels.servce', vars)).toThrow(/no key "servce" in alert.labels/);
    expect(() => evaluateExpression('steps.rollback.output', vars)).toThrow(/no key "rollback" in steps/);
    expect(() => evaluateExpression('nope.x', vars)).toThrow(/unknown name "nope"/);
  });

  it('throws a typed error carrying the expression', () => {
    try {
      evaluateExpression('1 +', vars);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ExpressionError);
      expect((e as ExpressionError).expression).toBe('1 +');
      expect((e as ExpressionError).message).toMatch(/syntax error at 1:3/);
    }
  });

  it('requires conditions to be bools', () => {
    expect(() => evaluateCondition('alert.labels.service', vars)).toThrow(/must evaluate to a bool, got string/);
  });
});

describe('checkExpression', () => {
  it('reports syntax errors and, when asked, unknown names', () => {
    expect(checkExpression('a &&')).toMatch(/syntax error/);
    expect(checkExpression('alert.labels.x == "y"')).toBeUndefined();
    const names = ['alert', 'steps', 'run', 'secrets'];
    expect(checkExpression('alrt.labels.x', { names })).toMatch(/unknown name "alrt"/);
    expect(checkExpression('steps.a.output.items.all(i, i > 0) && type(1) == int', { names })).toBeUndefined();
  });

  it('finds step references', () => {
    expect(referencedSteps('steps.a.output.value > 0 && steps["b"].output == 1').sort()).toEqual(['a', 'b']);
    expect(referencedSteps('[1].all(steps, steps > 0)')).toEqual([]);
  });
});

describe('interpolate / renderValue', () => {
  it('interpolates into strings', () => {
    expect(interpolate('Bearer ${{ secrets.DEPLOY_TOKEN }}', vars)).toBe('Bearer s3cret');
    expect(interpolate('#inc-${{alert.labels.service}}-${{ steps.count.output.value }}', vars)).toBe('#inc-checkout-3');
    expect(interpolate('no expressions', vars)).toBe('no expressions');
    expect(interpolate('${{ {"a": {"b": 1}} }}', vars)).toBe('{"a":{"b":1}}');
  });

  it('keeps the type of a string that is exactly one expression', () => {
    const rendered = renderValue(
      {
        replicas: '${{ steps.count.output.value + 2 }}',
        ratio: '${{ steps.error_rate.output.value }}',
        flag: '${{ steps.count.output.value > 1 }}',
        list: ['${{ steps.error_rate.output.series }}', 'x-${{ run.id }}', 7],
        text: ' ${{ steps.count.output.value }}',
      },
      vars,
    );
    expect(rendered).toEqual({
      replicas: 5,
      ratio: 0.08,
      flag: true,
      list: [[{ v: 1 }, { v: 2 }], 'x-r1', 7],
      text: ' 3',
    });
  });

  it('reports template problems', () => {
    expect(checkTemplate('x ${{ alert.labels.a')).toMatch(/unterminated/);
    expect(checkTemplate('x ${{ alert. }}')).toMatch(/syntax error/);
    expect(checkTemplate('x ${{ alert.labels.a }}')).toBeUndefined();
    expect(() => interpolate('${{ ', vars)).toThrow(ExpressionError);
  });
});
