/**
 * CEL through @bufbuild/cel: compiling (cached by text), static limits, a
 * metered evaluation that stops at a cost limit, and the rule that `secrets`
 * are only ever read whole (`secrets.NAME`), never computed with.
 */
import {
  CelScalar,
  celFunc,
  celEnv,
  celMethod,
  isCelError,
  isCelList,
  isCelMap,
  isCelType,
  isCelUint,
  parse,
  plan,
  unparse,
  type CelError,
  type CelInput,
  type CelResult,
} from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { FirebreakError } from '../errors.js';

/** An expression failed to parse or evaluate; carries the expression text. */
export class ExpressionError extends FirebreakError {
  readonly code: string = 'expression_failed';
  constructor(
    readonly expression: string,
    readonly reason: string,
  ) {
    super(`expression \`${expression}\`: ${reason}`);
  }
}

/**
 * Static and runtime bounds on one expression. CEL has no loops of its own, but
 * macros (`map`, `filter`, `all`, ...) nest and functions like `replace` grow
 * strings, so a short expression over a big alert can run for minutes.
 */
export const EXPRESSION_LIMITS = {
  /** Characters of expression text (checked before parsing). */
  maxLength: 16_384,
  /** Nodes of the parsed expression (macros expanded). */
  maxNodes: 5_000,
  /**
   * Cost units per evaluation: each macro iteration costs the nodes of its body,
   * each function the size of what it takes and returns (list and map entries,
   * 16 characters of a string), each list or map literal its size. About a tenth
   * of a second of evaluation on a small box; everyday expressions use a few hundred.
   */
  cost: 100_000,
} as const;

/** An expression used more than its cost limit; the step fails with this, the process carries on. */
export class ExpressionCostError extends ExpressionError {
  override readonly code = 'expression_cost_exceeded';
  constructor(expression: string) {
    super(expression, `expression exceeded its cost limit (${EXPRESSION_LIMITS.cost} units: macro iterations plus the size of computed values); simplify it or work on less data`);
  }
}

export type Expr = ReturnType<typeof parse>['expr'];
type Program = (vars: Record<string, CelInput>) => CelResult;

/** What the template layer needs to know about an expression, computed once per text. */
export interface Compiled {
  ast: Expr;
  /** Planned on first evaluation (validation alone never plans). */
  planned?: { program: Program; metered: boolean };
  /** Set when the expression is exactly `secrets.NAME` (or `secrets["NAME"]`). */
  secret?: string;
  /** Reads `secrets` in any other way: refused (see secretMisuse). */
  readsSecrets: boolean;
  /** Set when the expression is `unescaped(inner)`: the inner expression's text. */
  unescaped?: string;
  /** `unescaped(...)` appears somewhere other than around the whole interpolation. */
  nestedUnescaped: boolean;
}

/** The opt-out from contextual escaping, usable only around a whole interpolation. */
export const UNESCAPED_FUNCTION = 'unescaped';

const { INT, DOUBLE, DYN } = CelScalar;
// JS numbers arrive as CEL doubles. Comparisons with int literals already work
// (`value > 0`), but standard CEL has no mixed arithmetic, so `value * 100` would
// fail on a number that came from JSON. These overloads promote the int side.
const arith: Array<[string, (a: number, b: number) => number]> = [
  ['_+_', (a, b) => a + b],
  ['_-_', (a, b) => a - b],
  ['_*_', (a, b) => a * b],
  ['_/_', (a, b) => a / b],
];
const mixedArith = arith.flatMap(([op, f]) => [
  celFunc(op, [DOUBLE, INT], DOUBLE, (a, b) => f(a, Number(b))),
  celFunc(op, [INT, DOUBLE], DOUBLE, (a, b) => f(Number(a), b)),
]);

// ---------- metering ----------

// Evaluation is synchronous and single-threaded, so one meter per process is enough:
// it is reset before each metered evaluation and read right after it.
const meter = { spent: 0, exceeded: false };
const TICK = 'firebreak.cost_tick';
const CHARGE = 'firebreak.cost_charge';

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return 1 + (v.length >> 4);
  if (v instanceof Uint8Array) return 1 + (v.length >> 4);
  if (isCelList(v) || isCelMap(v)) return 1 + v.size;
  return 1;
}

function spend(units: number): void {
  meter.spent += units;
  if (meter.spent > EXPRESSION_LIMITS.cost) {
    meter.exceeded = true;
    // Returned as a CEL error by the library; macros stop at an erroring condition.
    throw new Error('expression exceeded its cost limit');
  }
}

const meterFuncs = [
  celFunc(TICK, [DYN, INT], DYN, (v, weight) => {
    spend(1 + Number(weight));
    return v as CelInput;
  }),
  celFunc(CHARGE, [DYN], DYN, (v) => {
    spend(sizeOf(v));
    return v as CelInput;
  }),
];

/**
 * `replace` in linear time, charged before it builds its result: the library's
 * version rescans the whole string after every replacement (quadratic), so one
 * call on a large alert field could stall the process for minutes.
 */
function linearReplace(this: string, from: string, to: string, limit?: bigint): string {
  const max = limit === undefined || limit < 0n ? Infinity : Number(limit);
  const chars = from === '' ? [...this] : [];
  let count = 0;
  if (from === '') count = Math.min(max, chars.length + 1);
  else for (let i = this.indexOf(from); i !== -1 && count < max; i = this.indexOf(from, i + from.length)) count++;
  // Charged before the result exists, so a runaway chain stops before it allocates.
  spend(sizeOf(this) + ((count * to.length) >> 4));
  const parts: string[] = [];
  if (from === '') {
    // As in Go's strings.Replace: an empty pattern matches before every character and at the end.
    for (let i = 0; i <= chars.length; i++) {
      if (i < count) parts.push(to);
      if (i < chars.length) parts.push(chars[i]!);
    }
  } else {
    let at = 0;
    for (let n = 0; n < count; n++) {
      const i = this.indexOf(from, at);
      parts.push(this.slice(at, i), to);
      at = i + from.length;
    }
    parts.push(this.slice(at));
  }
  return parts.join('');
}

const { STRING } = CelScalar;
const replaceFuncs = [
  celMethod('replace', STRING, [STRING, STRING], STRING, function (this: string, from: string, to: string) {
    return linearReplace.call(this, from, to);
  }),
  celMethod('replace', STRING, [STRING, STRING, INT], STRING, function (this: string, from: string, to: string, n: bigint) {
    return linearReplace.call(this, from, to, n);
  }),
];

// Later definitions of the same overload replace earlier ones: our `replace` wins over the extension's.
const env = celEnv({ funcs: [...strings, ...replaceFuncs, ...mixedArith, ...meterFuncs] });

// Logical operators are planned specially by the library and are cheap; the rest is charged.
const UNCHARGED = new Set(['_&&_', '_||_', '!_', '_?_:_', '@not_strictly_false', TICK, CHARGE]);
// Constant-time whatever their operands' size: only their result is charged. Every other function
// is also charged its operands' size (`x in big`, `big == other`, `big.contains(s)` walk them).
const OPERANDS_FREE = new Set(['_[_]', 'size', 'int', 'uint', 'double', 'bool', 'type', 'dyn']);
// Functions whose output can be much bigger than their input: any expression using one is metered.
const GROWING = new Set(['replace', 'format']);

function wrap(fn: string, inner: Expr, weight?: number): Expr {
  const args: unknown[] = [inner];
  if (weight !== undefined) {
    args.push({
      $typeName: 'cel.expr.Expr',
      id: inner.id,
      exprKind: { case: 'constExpr', value: { $typeName: 'cel.expr.Constant', constantKind: { case: 'int64Value', value: BigInt(weight) } } },
    });
  }
  return {
    $typeName: 'cel.expr.Expr',
    id: inner.id,
    exprKind: { case: 'callExpr', value: { $typeName: 'cel.expr.Expr.Call', function: fn, args } },
  } as unknown as Expr;
}

function countNodes(node: Expr | undefined): number {
  let n = 0;
  walk(node, () => void n++);
  return n;
}

/**
 * Rewrite a (freshly parsed, unshared) AST so every macro iteration and every
 * function's operands and result are charged to the meter. Iterations are charged in the loop
 * condition: an error there ends the macro at once, so an exhausted budget
 * unwinds nested macros in a few steps instead of finishing them.
 */
function instrument(node: Expr | undefined): Expr | undefined {
  if (!node) return node;
  const k = node.exprKind;
  switch (k.case) {
    case 'selectExpr':
      k.value.operand = instrument(k.value.operand);
      return node;
    case 'callExpr': {
      const fn = k.value.function;
      const charged = !UNCHARGED.has(fn);
      const operands = charged && !OPERANDS_FREE.has(fn);
      if (k.value.target) k.value.target = operands ? wrap(CHARGE, instrument(k.value.target)!) : instrument(k.value.target);
      k.value.args = k.value.args.map((a) => (operands ? wrap(CHARGE, instrument(a)!) : instrument(a)!));
      return charged ? wrap(CHARGE, node) : node;
    }
    case 'listExpr':
      k.value.elements = k.value.elements.map((e) => instrument(e)!);
      return wrap(CHARGE, node);
    case 'structExpr':
      for (const e of k.value.entries) {
        if (e.keyKind.case === 'mapKey') e.keyKind.value = instrument(e.keyKind.value)!;
        e.value = instrument(e.value);
      }
      return wrap(CHARGE, node);
    case 'comprehensionExpr': {
      const c = k.value;
      // An iteration costs at least the nodes it evaluates, whatever they are.
      const weight = countNodes(c.loopCondition) + countNodes(c.loopStep);
      c.iterRange = instrument(c.iterRange);
      c.accuInit = instrument(c.accuInit);
      c.loopCondition = wrap(TICK, instrument(c.loopCondition)!, weight);
      c.loopStep = instrument(c.loopStep);
      c.result = instrument(c.result);
      return node;
    }
    default:
      return node;
  }
}

// ---------- compiling ----------

// Programs are cached by text; the cap only guards against unbounded growth if
// expressions ever come from somewhere other than playbooks.
const CACHE_MAX = 10_000;
const cache = new Map<string, Compiled | string>();

/** Visit every node, tracking comprehension variables so `x` in `l.all(x, ...)` is not a free name. */
export function walk(
  node: Expr | undefined,
  visit: (n: Expr, bound: ReadonlySet<string>, nesting: number) => void,
  bound: ReadonlySet<string> = new Set(),
  nesting = 0,
): void {
  if (!node) return;
  visit(node, bound, nesting);
  const k = node.exprKind;
  switch (k.case) {
    case 'selectExpr':
      walk(k.value.operand, visit, bound, nesting);
      break;
    case 'callExpr':
      walk(k.value.target, visit, bound, nesting);
      for (const a of k.value.args) walk(a, visit, bound, nesting);
      break;
    case 'listExpr':
      for (const e of k.value.elements) walk(e, visit, bound, nesting);
      break;
    case 'structExpr':
      for (const e of k.value.entries) {
        if (e.keyKind.case === 'mapKey') walk(e.keyKind.value, visit, bound, nesting);
        walk(e.value, visit, bound, nesting);
      }
      break;
    case 'comprehensionExpr': {
      const c = k.value;
      walk(c.iterRange, visit, bound, nesting);
      walk(c.accuInit, visit, bound, nesting);
      const inner = new Set([...bound, c.iterVar, c.iterVar2, c.accuVar].filter(Boolean));
      walk(c.loopCondition, visit, inner, nesting + 1);
      walk(c.loopStep, visit, inner, nesting + 1);
      walk(c.result, visit, inner, nesting + 1);
      break;
    }
    default:
      break;
  }
}

const isFree = (n: Expr, name: string, bound: ReadonlySet<string>) => n.exprKind.case === 'identExpr' && n.exprKind.value.name === name && !bound.has(name);

/** `secrets.NAME` or `secrets["NAME"]` at the root: the name; else undefined. */
function wholeSecret(ast: Expr): string | undefined {
  const k = ast.exprKind;
  if (k.case === 'selectExpr' && !k.value.testOnly && k.value.operand && isFree(k.value.operand, 'secrets', new Set())) return k.value.field;
  if (k.case === 'callExpr' && k.value.function === '_[_]' && !k.value.target && k.value.args[0] && isFree(k.value.args[0], 'secrets', new Set())) {
    const key = k.value.args[1]?.exprKind;
    if (key?.case === 'constExpr' && key.value.constantKind.case === 'stringValue') return key.value.constantKind.value;
  }
  return undefined;
}

function syntaxMessage(raw: string): string {
  const m = /^<input>:(\d+):(\d+): ([\s\S]*)$/.exec(raw);
  return m ? `syntax error at ${m[1]}:${m[2]}: ${m[3]}` : `syntax error: ${raw}`;
}

/** Static limit: a message when the expression is too big (how much work it does is metered at run time). */
function limitProblem(ast: Expr): string | undefined {
  const nodes = countNodes(ast);
  if (nodes > EXPRESSION_LIMITS.maxNodes) return `expression is too large (${nodes} nodes, at most ${EXPRESSION_LIMITS.maxNodes})`;
  return undefined;
}

function needsMeter(ast: Expr): boolean {
  let found = false;
  walk(ast, (n) => {
    if (found) return;
    const k = n.exprKind;
    if (k.case === 'comprehensionExpr' || (k.case === 'callExpr' && GROWING.has(k.value.function))) found = true;
  });
  return found;
}

/** Plan an expression text; metered when it can do more work than its size suggests. */
function programFor(text: string, ast: Expr): { program: Program; metered: boolean } {
  const metered = needsMeter(ast);
  // The metered program is planned from its own parse: the rewrite must not touch the AST we analyse.
  const program = plan(env, metered ? instrument(parse(text).expr)! : ast) as Program;
  return { program, metered };
}

export function compile(expr: string): Compiled | string {
  const hit = cache.get(expr);
  if (hit !== undefined) return hit;
  let entry: Compiled | string;
  if (expr.length > EXPRESSION_LIMITS.maxLength) {
    entry = `expression is too long (${expr.length} characters, at most ${EXPRESSION_LIMITS.maxLength})`;
  } else {
    try {
      const ast = parse(expr).expr;
      entry = limitProblem(ast) ?? analyse(expr, ast);
    } catch (e) {
      entry = syntaxMessage(e instanceof Error ? e.message : String(e));
    }
  }
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(expr, entry);
  return entry;
}

function analyse(text: string, ast: Expr): Compiled {
  const secret = wholeSecret(ast);
  let readsSecrets = false;
  let unescapedCalls = 0;
  walk(ast, (n, bound) => {
    if (isFree(n, 'secrets', bound)) readsSecrets = true;
    if (n.exprKind.case === 'callExpr' && n.exprKind.value.function === UNESCAPED_FUNCTION && !n.exprKind.value.target) unescapedCalls++;
  });
  const root = ast.exprKind;
  const isUnescaped = root.case === 'callExpr' && root.value.function === UNESCAPED_FUNCTION && !root.value.target && root.value.args.length === 1;
  let unescaped: string | undefined;
  if (isUnescaped) {
    try {
      unescaped = unparse(root.value.args[0]!);
    } catch {
      // unparse cannot print macros; the inner text between the parentheses is the expression.
      unescaped = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')).trim();
    }
  }
  return {
    ast,
    ...(secret !== undefined && { secret }),
    readsSecrets: readsSecrets && secret === undefined,
    ...(unescaped !== undefined && { unescaped }),
    nestedUnescaped: unescapedCalls > (isUnescaped ? 1 : 0),
  };
}

// ---------- checking ----------

// CEL-builtin type identifiers (`type(x) == int`) that are not variables.
const TYPE_NAMES = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);

export const SECRETS_RULE = 'secrets can only be interpolated whole, as ${{ secrets.NAME }}: they cannot be passed to functions, compared or combined in an expression';

/** Parse error, limit, secrets misuse, misplaced unescaped(), or unknown top-level name (when `names` is given). */
export function checkExpression(expr: string, opts: { names?: readonly string[]; allowSecret?: boolean } = {}): string | undefined {
  const c = compile(expr);
  if (typeof c === 'string') return c;
  if (c.nestedUnescaped) return `${UNESCAPED_FUNCTION}() must wrap the whole interpolation: \${{ ${UNESCAPED_FUNCTION}(expr) }}`;
  const inner = c.unescaped !== undefined ? compile(c.unescaped) : c;
  if (typeof inner === 'string') return inner;
  if (inner.readsSecrets) return SECRETS_RULE;
  if (inner.secret !== undefined && opts.allowSecret === false) return 'secrets are not available here';
  if (!opts.names) return undefined;
  const allowed = new Set(opts.names);
  let problem: string | undefined;
  walk(c.ast, (n, bound) => {
    if (problem || n.exprKind.case !== 'identExpr') return;
    const name = n.exprKind.value.name;
    if (!allowed.has(name) && !bound.has(name) && !TYPE_NAMES.has(name)) {
      problem = `unknown name "${name}" (available: ${opts.names!.join(', ')})`;
    }
  });
  return problem;
}

/** Step ids an expression reads through `steps.<id>` or `steps["<id>"]` (for the loader's order check). */
export function referencedSteps(expr: string): string[] {
  const c = compile(expr);
  if (typeof c === 'string') return [];
  const ids = new Set<string>();
  walk(c.ast, (n, bound) => {
    const k = n.exprKind;
    if (k.case === 'selectExpr' && k.value.operand && isFree(k.value.operand, 'steps', bound)) ids.add(k.value.field);
    if (k.case === 'callExpr' && k.value.function === '_[_]' && k.value.args[0] && isFree(k.value.args[0], 'steps', bound)) {
      const key = k.value.args[1]?.exprKind;
      if (key?.case === 'constExpr' && key.value.constantKind.case === 'stringValue') ids.add(key.value.constantKind.value);
    }
  });
  return [...ids];
}

// ---------- evaluating ----------

/** Turn CEL's "field not found: x" into which object lacked which key. */
function describeError(ast: Expr, err: CelError): string {
  const missing = /^field not found: (.*)$/.exec(err.message)?.[1];
  if (missing !== undefined) {
    let where: string | undefined;
    walk(ast, (n) => {
      if (where) return;
      const k = n.exprKind;
      try {
        if (k.case === 'selectExpr' && k.value.field === missing && k.value.operand) where = unparse(k.value.operand);
        if (k.case === 'callExpr' && k.value.function === '_[_]' && k.value.args[0]) {
          const key = k.value.args[1]?.exprKind;
          if (key?.case === 'constExpr' && key.value.constantKind.value === missing) where = unparse(k.value.args[0]);
        }
      } catch {
        // unparse cannot print macros: say less rather than fail.
      }
    });
    return where ? `no key "${missing}" in ${where}` : `no key "${missing}"`;
  }
  if (err.message === 'unresolved attribute') {
    const ids: string[] = [];
    walk(ast, (n, bound) => {
      if (n.exprKind.case === 'identExpr' && n.id === err.exprId && !bound.has(n.exprKind.value.name)) ids.push(n.exprKind.value.name);
    });
    return ids[0] ? `unknown name "${ids[0]}"` : 'unknown name';
  }
  return err.message;
}

/** CEL values back to plain JSON-able JS: ints to numbers, lists/maps to arrays/objects. */
function toJs(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (isCelUint(v)) return toJs(v.value);
  if (isCelList(v)) return [...v].map(toJs);
  if (isCelMap(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(isCelUint(k) ? k.value : k)] = toJs(val);
    return o;
  }
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (isCelType(v)) return v.name;
  if (typeof v === 'object' && v !== null && 'message' in v) {
    // Timestamps and durations come back as protobuf reflect messages.
    const msg = (v as { message: { $typeName?: string; seconds?: bigint; nanos?: number } }).message;
    const ms = Number(msg.seconds ?? 0n) * 1000 + (msg.nanos ?? 0) / 1e6;
    if (msg.$typeName === 'google.protobuf.Timestamp') return new Date(ms).toISOString();
    if (msg.$typeName === 'google.protobuf.Duration') return `${ms / 1000}s`;
  }
  return v;
}

/** Marks a `secrets` value that must not be read: a playbook sent with a request gets none. */
export const WITHHELD_SECRETS: Readonly<Record<string, never>> = Object.freeze(Object.create(null) as Record<string, never>);

/** What a withheld secret renders to in a playbook sent with a request (dry runs). */
export function withheldSecret(name: string): string {
  return `[withheld secret ${name}]`;
}

/** The value of `secrets.NAME` from the variables, or a clear error. */
export function secretValue(expr: string, name: string, vars: Record<string, unknown>): string {
  const secrets = vars.secrets;
  if (secrets === WITHHELD_SECRETS) return withheldSecret(name);
  const value = secrets && typeof secrets === 'object' ? (secrets as Record<string, unknown>)[name] : undefined;
  if (typeof value !== 'string') throw new ExpressionError(expr, `secret ${name} is not set (FIREBREAK_SECRET_${name})`);
  return value;
}

/** Evaluate a compiled expression; secrets are never handed to CEL. */
export function evaluateCompiled(expr: string, c: Compiled, vars: Record<string, unknown>): unknown {
  if (c.secret !== undefined) return secretValue(expr, c.secret, vars);
  if (c.readsSecrets) throw new ExpressionError(expr, SECRETS_RULE);
  if (c.nestedUnescaped || c.unescaped !== undefined) throw new ExpressionError(expr, `${UNESCAPED_FUNCTION}() can only wrap a whole \${{ }} interpolation in a text field`);
  const { program, metered } = (c.planned ??= programFor(expr, c.ast));
  // Plain objects/arrays/numbers/strings are valid CEL input as they are (maps, lists, doubles).
  // `secrets` may be among them, but an expression that got here has no free `secrets` name, and
  // CEL resolves names only when the expression reads them.
  const input = vars as Record<string, CelInput>;
  let result: CelResult;
  if (metered) {
    meter.spent = 0;
    meter.exceeded = false;
    try {
      result = program(input);
    } finally {
      meter.spent = 0;
    }
    // `a || b` can hide an error on one side: the flag, not the result, says the budget ran out.
    if (meter.exceeded) {
      meter.exceeded = false;
      throw new ExpressionCostError(expr);
    }
  } else {
    result = program(input);
  }
  if (isCelError(result)) throw new ExpressionError(expr, describeError(c.ast, result));
  return toJs(result);
}

/** Evaluate to a plain JS value (ints as numbers). Throws ExpressionError (ExpressionCostError past the cost limit). */
export function evaluateExpression(expr: string, vars: Record<string, unknown>): unknown {
  const c = compile(expr);
  if (typeof c === 'string') throw new ExpressionError(expr, c);
  return evaluateCompiled(expr, c, vars);
}

/** Evaluate a `when:`; anything but a bool is an error rather than truthiness, so typos fail loudly. */
export function evaluateCondition(expr: string, vars: Record<string, unknown>): boolean {
  const c = compile(expr);
  if (typeof c === 'string') throw new ExpressionError(expr, c);
  if (c.secret !== undefined) throw new ExpressionError(expr, SECRETS_RULE);
  const v = evaluateCompiled(expr, c, vars);
  if (typeof v !== 'boolean') throw new ExpressionError(expr, `must evaluate to a bool, got ${v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v}`);
  return v;
}
