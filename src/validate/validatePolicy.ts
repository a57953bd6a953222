import { normalizeText, sha256 } from '../core/hash.js';
import type { Diagnostic } from '../core/errors.js';
import { locate, type LoadedFile, type PathSegment } from '../load/loadPolicy.js';
import { sqlPosition } from '../load/position.js';
import type {
  Expectation, KeySet, Lookup, Policy, PolicyKind, Preserve, SqlFragment, Step, StepBatch, Subject, TableName, Wipe,
} from '../policy.js';
import { checkQuery, checkWhere, referencesOf, type FragmentOptions, type FragmentResult } from '../sql/fragment.js';
import { isAllowed } from '../sql/functionRules.js';
import { schemaDiagnostics, describe } from './schema.js';
import { didYouMean } from './didYouMean.js';
import { flagDecls, paramDecls } from './declarations.js';
import { afterCommitOf } from '../outbox/validate.js';
import { guardConfirm, subjectConfirmKeys } from './confirm.js';
import { stepUpdateOf } from './updateStep.js';

/**
 * Untrusted YAML in, a Policy out, or every problem of the file located at file:line:col.
 * Schema errors come first; the semantic checks below read the raw value defensively so that
 * they can still report on the parts that are well-formed.
 */
export type Validated = { ok: true; policy: Policy } | { ok: false; diagnostics: readonly Diagnostic[] };

/** Reserved run-time names: :subject is the subject set; force_multi is the --force-multi switch. */
const RESERVED = new Set(['subject', 'force_multi']);
const MAX_IDENTIFIER_BYTES = 63;
const MAX_SQL_PROBLEMS = 10;

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export { normalizeText, sha256 } from '../core/hash.js';

export function validatePolicy(file: LoadedFile): Validated {
  if (file.syntaxErrors.length) return { ok: false, diagnostics: file.syntaxErrors };
  const diagnostics: Diagnostic[] = [...schemaDiagnostics(file)];
  const raw = file.raw;
  if (!isObject(raw)) return { ok: false, diagnostics: diagnostics.length ? diagnostics : [{ ...locate(file, []), message: 'a policy must be a YAML mapping' }] };

  const report = (path: readonly PathSegment[], message: string, key = false) =>
    diagnostics.push({ ...locate(file, path, { key }), message: path.length ? `${describe(path)}: ${message}` : message });

  const kind = (['purge', 'cleanup', 'wipe', 'check'] as const).find((k) => k === raw['kind']) ?? 'purge';
  const schema = str(raw['schema']) ?? 'public';
  checkIdentifier(['schema'], schema);

  function checkIdentifier(path: readonly PathSegment[], name: string): void {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > MAX_IDENTIFIER_BYTES) report(path, `"${name}" is ${bytes} bytes; PostgreSQL truncates identifiers to ${MAX_IDENTIFIER_BYTES} bytes`);
  }
  /** A table reference: `name` in the policy's schema, or `schema.name` (a dot always separates them). */
  function table(path: readonly PathSegment[], value: unknown): TableName {
    const text = str(value) ?? '';
    const dot = text.indexOf('.');
    const ref = dot > 0 && dot < text.length - 1 ? { schema: text.slice(0, dot), name: text.slice(dot + 1) } : { schema, name: text };
    if (ref.name.includes('.')) report(path, `"${text}": a table reference is name or schema.name (table names containing a dot are not supported)`);
    checkIdentifier(path, ref.schema);
    checkIdentifier(path, ref.name);
    return ref;
  }

  // Params and flags: the names :refs and if: may use.
  const params = paramDecls(raw);
  for (const p of params) {
    if (RESERVED.has(p.name)) report(['params', p.name], `"${p.name}" is reserved`, true);
    checkIdentifier(['params', p.name], p.name);
    if (p.normalize !== undefined && p.type !== 'text') report(['params', p.name, 'normalize'], 'normalize applies to text params only');
  }
  const flags = flagDecls(raw);
  for (const f of flags) {
    if (RESERVED.has(f.name)) report(['flags', f.name], `"${f.name}" is reserved`, true);
    if (params.some((p) => p.name === f.name)) report(['flags', f.name], `"${f.name}" is both a param and a flag`, true);
  }
  const paramNames = params.map((p) => p.name);
  const flagNames = flags.map((f) => f.name);
  /** `if: <flag>` of a step, preserve rule or expectation. */
  function flagOf(path: readonly PathSegment[], value: unknown): string | undefined {
    const flag = str(value);
    if (flag !== undefined && !flagNames.includes(flag)) {
      const hint = didYouMean(flag, flagNames);
      report(path, `unknown flag "${flag}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
    return flag;
  }
  const hasSubject = kind === 'purge';
  // Functions the author vouches for: called although volatile (see src/sql/functionRules.ts).
  const allowFunctions = list(raw['allow_functions']).filter((f): f is string => typeof f === 'string');
  const sqlOptions: FragmentOptions = { allowFunctions };
  const calledFunctions: NonNullable<SqlFragment['functions']>[number][] = [];
  let sqlInvalid = false;

  /** Parse a where/query, report its problems at their place in the YAML, check its references. */
  // Set names, known before anything else is read so that every fragment can use them; which of
  // them a fragment may use is `visibleSets` (a set sees only the sets declared before it).
  const setNames = kind === 'purge' || kind === 'cleanup' ? Object.keys(isObject(raw['sets']) ? raw['sets'] : {}) : [];
  let visibleSets: readonly string[] = setNames;

  function fragment(path: readonly PathSegment[], check: (t: string, o: FragmentOptions) => FragmentResult, allowedParams = paramNames): SqlFragment | undefined {
    const text = str(file.doc.getIn(path));
    if (text === undefined) return undefined;
    const result = check(text, { ...sqlOptions, sets: new Set(setNames) });
    if (!result.ok) {
      sqlInvalid = true;
      // A long fragment can hold hundreds of the same mistake: the first few say enough.
      for (const p of result.problems.slice(0, MAX_SQL_PROBLEMS)) diagnostics.push({ ...sqlPosition(file, path, text, p.offset), message: `${describe(path)}: ${p.message}` });
      if (result.problems.length > MAX_SQL_PROBLEMS) report(path, `and ${result.problems.length - MAX_SQL_PROBLEMS} more problems in this SQL`);
      return undefined;
    }
    for (const ref of referencesOf(result.fragment)) {
      if (ref === 'subject') {
        if (!hasSubject) report(path, ':subject is only available in a purge policy (it has no subject)');
        continue;
      }
      // A flag always has a value (given or its default), so it may be read anywhere, as a boolean.
      if (allowedParams.includes(ref) || flagNames.includes(ref)) continue;
      if (visibleSets.includes(ref)) continue;
      if (setNames.includes(ref)) {
        const why = path[0] !== 'sets' ? 'captured after the subject, so a lookup cannot read it' : path[1] === ref ? 'defined by this very entry' : 'declared after this one; a set reads only :subject and the sets before it';
        report(path, `:${ref} is a set ${why}`);
      } else if (paramNames.includes(ref)) {
        report(path, `:${ref} is not in this lookup's "by" list, so it may be NULL when the lookup runs`);
      } else {
        const hint = didYouMean(ref, [...paramNames, ...flagNames, ...(hasSubject ? ['subject'] : []), ...setNames]);
        report(path, `unknown parameter :${ref}${hint ? ` (did you mean :${hint}?)` : ''}`);
      }
    }
    calledFunctions.push(...(result.fragment.functions ?? []));
    return result.fragment;
  }

  // Subject.
  let subject: Subject | undefined;
  if (isObject(raw['subject'])) {
    const s = raw['subject'];
    if (kind !== 'purge') report(['subject'], `only a purge policy has a subject (this one is kind: ${kind})`, true);
    const lookup: Lookup[] = [];
    list(s['lookup']).forEach((entry, i) => {
      if (!isObject(entry)) return;
      const by = list(entry['by']).filter((b): b is string => typeof b === 'string');
      by.forEach((b, j) => {
        if (!paramNames.includes(b)) {
          const hint = didYouMean(b, paramNames);
          report(['subject', 'lookup', i, 'by', j], `unknown parameter "${b}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
        }
      });
      visibleSets = []; // sets are captured after the subject
      const where = fragment(['subject', 'lookup', i, 'where'], checkWhere, by);
      visibleSets = setNames;
      if (where && referencesOf(where).includes('subject')) report(['subject', 'lookup', i, 'where'], 'a lookup cannot use :subject (it defines it)');
      if (where) lookup.push({ by, where });
    });
    const key = str(s['key']) ?? '';
    checkIdentifier(['subject', 'key'], key);
    const identifiers = list(s['identifiers']).filter((c): c is string => typeof c === 'string');
    identifiers.forEach((c, i) => checkIdentifier(['subject', 'identifiers', i], c));
    const capture = list(s['capture']).filter((c): c is string => typeof c === 'string');
    subject = { table: table(['subject', 'table'], s['table']), key, lookup, max: typeof s['max'] === 'number' ? s['max'] : 1, identifiers, capture, ...subjectConfirmKeys(s, checkIdentifier) };
  } else if (kind === 'purge') {
    report([], 'a purge policy needs a subject (the rows being removed, found by a lookup)');
  }

  const rawSets: unknown = raw['sets'];
  const sets = keySets();

  /** sets: named key sets, each reading only :subject, params and the sets declared before it. */
  function keySets(): KeySet[] {
    const out: KeySet[] = [];
    if (rawSets === undefined) return out;
    if (kind !== 'purge' && kind !== 'cleanup') {
      report(['sets'], `a ${kind} policy removes no rows by key, so it has no sets`, true);
      return out;
    }
    if (!isObject(rawSets)) return out;
    const taken = new Set([...RESERVED, ...paramNames, ...flags.map((f) => f.name)]);
    Object.entries(rawSets).forEach(([name, decl], i) => {
      if (taken.has(name)) report(['sets', name], `"${name}" is already a param, flag or reserved name`, true);
      if (!isObject(decl)) return;
      visibleSets = setNames.slice(0, i);
      const where = fragment(['sets', name, 'where'], checkWhere);
      visibleSets = setNames;
      const key = typeof decl['key'] === 'string' ? [decl['key']] : list(decl['key']).filter((k): k is string => typeof k === 'string');
      key.forEach((k) => checkIdentifier(['sets', name, 'key'], k));
      if (new Set(key).size !== key.length) report(['sets', name, 'key'], 'names a column twice');
      if (where) {
        out.push({
          name, table: table(['sets', name, 'table'], decl['table']), key, where,
          ...(str(decl['description']) ? { description: str(decl['description']) } : {}),
        });
      }
    });
    return out;
  }

  // A step's batch (src/run/batched.ts): the schema checked its numbers; cleanup steps only.
  const batchOf = (rawStep: Record<string, unknown>, path: PathSegment[]): { batch?: StepBatch } => {
    const b = rawStep['batch'];
    if (!isObject(b)) return {};
    if (kind !== 'cleanup') report([...path, 'batch'], `batch goes on the steps of a cleanup policy (this one is kind: ${kind})`, true);
    if (rawStep['optional'] === true) report([...path, 'batch'], 'a batched step cannot be optional (its table and primary key are read before the first batch)', true);
    const rows = b['rows'];
    const ms = b['max_batch_ms'];
    return { batch: { ...(typeof rows === 'number' ? { rows } : {}), ...(typeof ms === 'number' ? { maxBatchMs: ms } : {}) } };
  };

  // Steps.
  const steps: Step[] = [];
  const seenSteps = new Map<string, number>();
  list(raw['steps']).forEach((rawStep, i) => {
    if (!isObject(rawStep)) return;
    const path = ['steps', i];
    const allRows = rawStep['all_rows'] === true;
    const hasWhere = rawStep['where'] !== undefined;
    const update = stepUpdateOf(rawStep, path, { report, fragment, params });
    if (!hasWhere && !allRows) report(path, `has no where, so it would ${update ? 'update' : 'delete'} every row: add a where, or all_rows: true to say that is intended`);
    if (hasWhere && allRows) report([...path, 'all_rows'], 'all_rows: true and a where contradict each other', true);
    const where = hasWhere ? fragment([...path, 'where'], checkWhere) : undefined;
    const flag = flagOf([...path, 'if'], rawStep['if']);
    const t = table([...path, 'table'], rawStep['table']);
    const identity = `${t.schema}\u0000${t.name}\u0000${where?.text ?? '*'}\u0000${flag ?? ''}\u0000${update?.mode ?? 'delete'}`;
    const first = seenSteps.get(identity);
    if (first !== undefined) report(path, `duplicates steps[${first}] (same table, where and if)`);
    else seenSteps.set(identity, i);
    steps.push({
      table: t,
      ...(where ? { where } : {}),
      optional: rawStep['optional'] === true,
      ...(flag !== undefined ? { if: flag } : {}),
      ...(typeof rawStep['max_rows'] === 'number' ? { maxRows: rawStep['max_rows'] } : {}),
      ...(str(rawStep['description']) ? { description: str(rawStep['description']) } : {}),
      cascades: list(rawStep['cascades']).map((c, j) => table([...path, 'cascades', j], c)),
      ...batchOf(rawStep, path),
      ...(update ? { update } : {}),
    });
  });
  if ((kind === 'purge' || kind === 'cleanup') && steps.length === 0 && !diagnostics.length) report([], `a ${kind} policy needs at least one step`);
  if ((kind === 'wipe' || kind === 'check') && raw['steps'] !== undefined) report(['steps'], `a ${kind} policy has no steps`, true);

  // Preserve.
  const preserve: Preserve[] = [];
  list(raw['preserve']).forEach((p, i) => {
    if (!isObject(p)) return;
    const where = fragment(['preserve', i, 'where'], checkWhere);
    const flag = flagOf(['preserve', i, 'if'], p['if']);
    if (where) {
      preserve.push({
        table: table(['preserve', i, 'table'], p['table']), where,
        ...(flag !== undefined ? { if: flag } : {}),
        ...(str(p['description']) ? { description: str(p['description']) } : {}),
      });
    }
  });
  if (kind === 'check' && raw['preserve'] !== undefined) report(['preserve'], 'a check policy removes nothing, so it has nothing to preserve', true);
  if (kind === 'wipe' && raw['preserve'] !== undefined) report(['preserve'], 'TRUNCATE cannot spare rows: a wipe keeps whole tables with keep, not rows with preserve', true);

  // Wipe and keep.
  let wipe: Wipe | undefined;
  const keep = list(raw['keep']).map((k, i) => table(['keep', i], k));
  if (isObject(raw['wipe'])) {
    const w = raw['wipe'];
    if (kind !== 'wipe') report(['wipe'], `only a wipe policy has wipe (this one is kind: ${kind})`, true);
    const tables = list(w['tables']).map((t, i) => table(['wipe', 'tables', i], t));
    tables.forEach((t, i) => {
      const same = (o: TableName) => o.schema === t.schema && o.name === t.name;
      if (keep.some(same)) report(['wipe', 'tables', i], `"${t.name}" is also in keep: a table cannot be both wiped and kept`);
      if (tables.findIndex(same) < i) report(['wipe', 'tables', i], `"${t.name}" is listed twice`);
    });
    const reach = list(w['reach']).map((t, i) => table(['wipe', 'reach', i], t));
    wipe = { tables, reach, restartIdentity: w['restart_identity'] !== false, cascade: w['cascade'] !== false };
  } else if (kind === 'wipe') {
    report([], 'a wipe policy needs wipe: { tables: [...] }');
  }
  if (raw['keep'] !== undefined && kind !== 'wipe') report(['keep'], 'keep applies to wipe policies (use preserve for rows)', true);

  // Expectations.
  const expect: Expectation[] = [];
  list(raw['expect']).forEach((e, i) => {
    if (!isObject(e)) return;
    const bounds = ['min', 'max', 'equals'].filter((b) => typeof e[b] === 'number');
    if (bounds.length === 0) report(['expect', i], 'needs min, max or equals');
    if (bounds.includes('equals') && bounds.length > 1) report(['expect', i], 'equals cannot be combined with min or max');
    if (typeof e['min'] === 'number' && typeof e['max'] === 'number' && e['min'] > e['max']) report(['expect', i], 'min is greater than max');
    const query = fragment(['expect', i, 'query'], checkQuery);
    const when = e['when'] === 'before' ? 'before' : 'after';
    const flag = flagOf(['expect', i, 'if'], e['if']);
    if (kind === 'check' && e['when'] !== undefined) report(['expect', i, 'when'], 'a check policy has no steps, so when does not apply', true);
    if (query) {
      expect.push({
        name: str(e['name']) ?? `expect ${i + 1}`, query, when,
        ...(flag !== undefined ? { if: flag } : {}),
        ...Object.fromEntries(bounds.map((b) => [b, e[b] as number])),
      });
    }
  });
  if (kind === 'check' && list(raw['expect']).length === 0) report([], 'a check policy needs at least one expect');
  if (kind === 'check' && raw['backup'] !== undefined) report(['backup'], 'a check policy removes nothing, so there is nothing to back up', true);

  // An opt-in must name a function the policy calls: a stale one would silently allow it later.
  // (Only when every fragment parsed: an invalid one says nothing about what it calls.)
  if (!sqlInvalid) allowFunctions.forEach((name, i) => {
    if (!calledFunctions.some((f) => isAllowed(f, [name]))) report(['allow_functions', i], `${name} is not called by any SQL of this policy: remove it`);
  });

  // after_commit: side effects run after COMMIT (src/outbox/validate.ts).
  const afterCommit = afterCommitOf(raw, kind, params, subject?.capture ?? [], report, table, flagOf);

  const guard = isObject(raw['guard']) ? raw['guard'] : {};
  const confirm = guardConfirm(raw, report);
  if (diagnostics.length) return { ok: false, diagnostics: sortDiagnostics(diagnostics) };
  return {
    ok: true,
    policy: {
      version: 1,
      name: raw['name'] as string,
      kind: kind as PolicyKind,
      ...(str(raw['description']) ? { description: str(raw['description'])!.trim() } : {}),
      schema, params, flags,
      ...(subject ? { subject } : {}),
      sets, steps, preserve,
      ...(wipe ? { wipe } : {}),
      keep, expect,
      ...(raw['backup'] === 'required' ? { backup: 'required' as const } : {}),
      ...(allowFunctions.length ? { allowFunctions } : {}),
      afterCommit,
      guard: {
        ...(Array.isArray(guard['databases']) ? { databases: guard['databases'] as string[] } : {}),
        ...confirm,
      },
      source: { path: file.path, sha256: sha256(normalizeText(file.text)) },
    },
  };
}

function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds.sort((a, b) => a.line - b.line || a.col - b.col);
}

