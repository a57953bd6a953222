import type { PathSegment } from '../load/loadPolicy.js';
import type { ColumnUpdate, NewValue, ParamDecl, SqlFragment, StepUpdate } from '../policy.js';
import { checkValue, type FragmentOptions, type FragmentResult } from '../sql/fragment.js';
import { quoteLiteral } from '../sql/quote.js';
import { didYouMean } from './didYouMean.js';

/**
 * A step's anonymize: or detach: (docs/POLICY.md, "Steps that keep their rows"), read from the
 * raw, schema-checked step. Whether the columns exist, can be NULL, or are keys is the live
 * schema's to say: lint (src/lint/updateRules.ts).
 */
type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface UpdateContext {
  readonly report: (path: readonly PathSegment[], message: string, key?: boolean) => void;
  /** Parses an SQL fragment at `path` like a where (references checked), undefined when invalid. */
  readonly fragment: (path: readonly PathSegment[], check: (t: string, o: FragmentOptions) => FragmentResult) => SqlFragment | undefined;
  readonly params: readonly ParamDecl[];
}

/** Masker names of `{ with: <name> }`; any other text is an SQL expression. */
export const MASKERS = ['redact', 'hash', 'null', 'default'] as const;

export function stepUpdateOf(rawStep: Raw, path: readonly PathSegment[], ctx: UpdateContext): StepUpdate | undefined {
  const anonymize = rawStep['anonymize'];
  const detach = rawStep['detach'];
  if ((anonymize !== undefined || detach !== undefined) && rawStep['batch'] !== undefined) {
    ctx.report([...path, 'batch'], 'batch: applies to a step that deletes, not to anonymize: or detach:', true);
  }
  if (anonymize !== undefined && detach !== undefined) {
    ctx.report([...path, 'detach'], 'a step either anonymizes or detaches: write two steps', true);
    return undefined;
  }
  const empty = (key: string) => ctx.report([...path, key], `names no column: list the columns the step overwrites`);
  if (isObject(anonymize)) {
    if (!Object.keys(anonymize).length) empty('anonymize');
    return { mode: 'anonymize', set: anonymizeColumns(anonymize, [...path, 'anonymize'], ctx) };
  }
  if (Array.isArray(detach)) {
    if (!detach.length) empty('detach');
    return { mode: 'detach', set: detachColumns(detach, [...path, 'detach'], ctx) };
  }
  return undefined;
}

function anonymizeColumns(raw: Raw, path: readonly PathSegment[], ctx: UpdateContext): ColumnUpdate[] {
  const out: ColumnUpdate[] = [];
  for (const [column, spec] of Object.entries(raw)) {
    const at = [...path, column];
    const value = newValue(spec, at, ctx);
    if (value) out.push({ column, value });
  }
  return out;
}

function newValue(spec: unknown, at: readonly PathSegment[], ctx: UpdateContext): NewValue | undefined {
  if (spec === null) return { kind: 'null' };
  if (typeof spec === 'string') return { kind: 'constant', literal: quoteLiteral(spec) };
  if (typeof spec === 'boolean') return { kind: 'constant', literal: spec ? 'true' : 'false' };
  if (typeof spec === 'number') {
    if (!Number.isFinite(spec)) {
      ctx.report(at, 'must be a finite number');
      return undefined;
    }
    return { kind: 'constant', literal: String(spec) };
  }
  if (!isObject(spec) || typeof spec['with'] !== 'string') return undefined; // the schema has said so
  const masker = spec['with'].trim();
  const key = typeof spec['key'] === 'string' ? spec['key'] : undefined;
  if (key !== undefined && masker !== 'hash') ctx.report([...at, 'key'], 'only the hash masker takes a key', true);
  switch (masker) {
    case 'null':
      return { kind: 'null' };
    case 'default':
      return { kind: 'default' };
    case 'redact':
      return { kind: 'redact' };
    case 'hash':
      return hashKey(key, at, ctx);
  }
  const sql = ctx.fragment([...at, 'with'], checkValue);
  return sql ? { kind: 'expression', sql } : undefined;
}

/**
 * A keyed hash needs a secret that is not in the policy (anyone with the policy could otherwise
 * recompute the hash of a known value): a text param, given at run time and never logged in clear.
 */
function hashKey(key: string | undefined, at: readonly PathSegment[], ctx: UpdateContext): NewValue | undefined {
  if (key === undefined) {
    ctx.report(at, 'hash needs key: <param>, a text param holding the secret key (given at run time, never written in the policy)');
    return undefined;
  }
  const param = ctx.params.find((p) => p.name === key);
  if (!param) {
    const hint = didYouMean(key, ctx.params.map((p) => p.name));
    ctx.report([...at, 'key'], `unknown parameter "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}: declare it under params with type: text`);
    return undefined;
  }
  if (param.type !== 'text') ctx.report([...at, 'key'], `the hash key ${key} must be a text param (it is ${param.type})`);
  else if (!param.personal) ctx.report([...at, 'key'], `the hash key ${key} is a secret: it must not be declared personal: false (its value would be logged)`);
  return { kind: 'hash', key };
}

function detachColumns(raw: readonly unknown[], path: readonly PathSegment[], ctx: UpdateContext): ColumnUpdate[] {
  const out: ColumnUpdate[] = [];
  raw.forEach((item, i) => {
    const column = typeof item === 'string' ? item : isObject(item) && typeof item['column'] === 'string' ? item['column'] : undefined;
    if (column === undefined) return;
    if (out.some((c) => c.column === column)) {
      ctx.report([...path, i], `${column} is listed twice`);
      return;
    }
    const toDefault = isObject(item) && item['to'] === 'default';
    out.push({ column, value: toDefault ? { kind: 'default' } : { kind: 'null' } });
  });
  return out;
}
