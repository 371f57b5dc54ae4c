/**
 * The sandboxed expression language of playbooks: CEL through @bufbuild/cel.
 * `${{ expr }}` interpolates into strings, escaped for where it lands (URL,
 * PromQL, Slack mrkdwn); `when:` evaluates a bool. No eval, no home-made
 * parser: every expression goes through the CEL parser/planner, under static
 * limits and a cost limit.
 */
import { checkTemplateIn } from './template.js';

export {
  ExpressionError,
  ExpressionCostError,
  EXPRESSION_LIMITS,
  SECRETS_RULE,
  UNESCAPED_FUNCTION,
  WITHHELD_SECRETS,
  checkExpression,
  evaluateCondition,
  evaluateExpression,
  referencedSteps,
  withheldSecret,
} from './cel.js';
export { createEscaper, escapeMrkdwn, EscapeError, TEMPLATE_CONTEXTS, type TemplateContext } from './escape.js';
export { checkTemplateIn, interpolate, renderValue, templateExpressions, type ContextOf, type TemplateReport } from './template.js';
export { contextsOf, templateContextAt, templateField } from './contexts.js';

/** The names playbook expressions can see. */
export const PLAYBOOK_NAMES = ['alert', 'steps', 'run', 'secrets'] as const;

/** Problems with a template: unterminated `${{`, or the first bad expression (plain context). */
export function checkTemplate(template: string, opts: { names?: readonly string[] } = {}): string | undefined {
  return checkTemplateIn(template, 'plain', opts).errors[0];
}
