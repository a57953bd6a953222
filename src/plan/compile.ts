import type { FunctionName, Policy, Preserve, SqlFragment, TableName } from '../policy.js';
import { authorSql, needsCatalogCheck } from '../sql/functionRules.js';
import { quoteIdent } from '../sql/quote.js';
import { qualified } from '../core/names.js';
import type { AuthorSql, ExpectNode, Plan, PlanNode, PreserveCondition } from './nodes.js';
import { flagRead, PARAMS, setTable, SUBJECT } from './sql.js';
import { updateNode } from './update.js';

/**
 * Policy -> Plan. Pure: the same policy always yields the same nodes. What the nodes print to
 * is what a DBA reviews, what an operator pastes, and what the runner executes, so every check
 * lives in the plan, inside the SQL, as an assertion that raises and rolls the transaction back.
 */
export function compile(policy: Policy): Plan {
  const p = policy;
  const forceMulti = p.kind === 'purge';
  const hasParams = p.params.length > 0 || p.flags.length > 0 || forceMulti;
  const maxSubjects = p.subject?.max ?? 1;
  const author = authorSqlOf(p);
  const condition = (rule: Preserve): PreserveCondition => ({
    rule: p.preserve.indexOf(rule) + 1,
    where: author(rule.where),
    ...(rule.if ? { flag: rule.if } : {}),
  });
  const rulesOf = (table: TableName) => p.preserve.filter((r) => qualified(r.table) === qualified(table)).map(condition);
  // A preserve rule is counted only when a step declares a cascade into its table (so other
  // deletes there are expected); otherwise the table's changes are compared (print/checks.ts).
  const counted = (rule: Preserve) => p.steps.some((s) => s.cascades.some((c) => qualified(c) === qualified(rule.table)));

  const nodes: PlanNode[] = [
    { kind: 'begin', check: p.kind === 'check' },
    // Batched steps: the file refuses to run by hand (print/batch.ts); purgekit apply runs the batches.
    ...(p.steps.some((st) => st.batch) ? [{ kind: 'apply-only' as const, policy: p.name, steps: p.steps.flatMap((st, i) => (st.batch ? [i + 1] : [])) }] : []),
    { kind: 'search-path', schema: p.schema },
    { kind: 'lock-timeout' },
    { kind: 'report-reset' },
    { kind: 'report-table' },
    { kind: 'raise-function' },
    { kind: 'settings-snapshot' },
  ];
  if (hasParams) nodes.push({ kind: 'params', policy: p.name, shape: { params: p.params, flags: p.flags, forceMulti, maxSubjects } });
  if (p.kind === 'check') nodes.push({ kind: 'read-only' });

  const tables = requiredTables(p);
  if (tables.length) nodes.push({ kind: 'tables-guard', tables });
  const functions = catalogChecked(p);
  if (functions.length) nodes.push({ kind: 'functions-guard', functions, allowFunctions: Boolean(p.allowFunctions?.length) });

  const s = p.subject;
  if (s) {
    nodes.push({ kind: 'subject-table', table: s.table, key: s.key });
    s.lookup.forEach((lookup, i) =>
      nodes.push({
        kind: 'lookup',
        lookup: i + 1,
        count: s.lookup.length,
        by: lookup.by,
        earlier: s.lookup.slice(0, i).map((l) => l.by),
        table: s.table,
        key: s.key,
        where: author(lookup.where),
        source: ['subject', 'lookup', i, 'where'],
      }),
    );
    nodes.push({ kind: 'subject-count', table: s.table });
    nodes.push({ kind: 'subject-guard', table: s.table, key: s.key, max: s.max, lookups: s.lookup.map((l) => l.by), preserved: rulesOf(s.table) });
    nodes.push({ kind: 'analyze', of: { kind: 'subject' } });
  }
  p.sets.forEach((set, i) => {
    const where = author(set.where);
    nodes.push({ kind: 'set-table', name: set.name, table: set.table, key: set.key, where, ...(set.description ? { description: set.description } : {}), first: i === 0 });
    nodes.push({ kind: 'set-fill', name: set.name, table: set.table, key: set.key, where, source: ['sets', set.name, 'where'] });
    nodes.push({ kind: 'analyze', of: { kind: 'set', name: set.name } });
  });

  const expectation = (i: number): ExpectNode => {
    const e = p.expect[i]!;
    return {
      kind: 'expect',
      expect: i + 1,
      name: e.name,
      policyKind: p.kind,
      when: e.when,
      ...(e.equals !== undefined ? { equals: e.equals } : {}),
      ...(e.min !== undefined ? { min: e.min } : {}),
      ...(e.max !== undefined ? { max: e.max } : {}),
      query: author(e.query),
      ...(e.if ? { flag: e.if } : {}),
      afterSteps: p.kind !== 'check' && e.when === 'after',
      source: ['expect', i, 'query'],
    };
  };
  const indexed = p.expect.map((e, i) => ({ e, i }));
  const after = indexed.filter(({ e }) => e.when === 'after' || p.kind === 'check');
  const before = p.kind === 'check' ? [] : indexed.filter(({ e }) => e.when === 'before');
  before.forEach(({ i }) => nodes.push(expectation(i)));
  if (before.length) nodes.push({ kind: 'verdict', phase: 'before', afterSteps: false });
  // after_commit: the jobs go into the outbox before the first delete, while the subject rows are there.
  if (p.afterCommit.length) nodes.push({ kind: 'outbox', policy: p.name, actions: p.afterCommit, ...(s ? { subject: { table: s.table, key: s.key, capture: s.capture } } : {}) });

  p.preserve.forEach((rule, i) =>
    nodes.push({
      kind: 'preserve',
      rule: i + 1,
      table: rule.table,
      condition: condition(rule),
      ...(rule.description ? { description: rule.description } : {}),
      counted: counted(rule),
      source: ['preserve', i, 'where'],
    }),
  );
  p.steps.forEach((step, i) => {
    const fields = {
      step: i + 1,
      count: p.steps.length,
      table: step.table,
      ...(step.where ? { where: author(step.where) } : {}),
      keep: rulesOf(step.table),
      optional: step.optional,
      ...(step.if ? { flag: step.if } : {}),
      ...(step.maxRows !== undefined ? { maxRows: step.maxRows } : {}),
      cascades: step.cascades,
      ...(step.description ? { description: step.description } : {}),
      source: step.where ? ['steps', i, 'where'] : ['steps', i, 'table'],
      ...(step.batch ? { batch: { ...step.batch, source: ['steps', i, 'batch'] as const } } : {}),
    };
    nodes.push(step.update ? updateNode(fields, step.update, author) : { kind: 'step', ...fields });
  });
  if (p.wipe) {
    const w = p.wipe;
    nodes.push({ kind: 'wipe-reach-table', cascade: w.cascade, keep: p.keep });
    nodes.push({ kind: 'wipe-reach', tables: w.tables, cascade: w.cascade, keep: p.keep });
    nodes.push({ kind: 'wipe', tables: w.tables, cascade: w.cascade, restartIdentity: w.restartIdentity });
    if (p.keep.length) nodes.push({ kind: 'keep-check' });
  }
  const updated = (rule: Preserve) => p.steps.some((s) => s.update && qualified(s.table) === qualified(rule.table));
  p.preserve.forEach((rule, i) =>
    nodes.push({ kind: 'preserve-check', rule: i + 1, table: rule.table, condition: condition(rule), counted: counted(rule), ...(updated(rule) ? { updatedBySteps: true as const } : {}) }),
  );
  after.forEach(({ i }) => nodes.push(expectation(i)));
  if (after.length) nodes.push({ kind: 'verdict', phase: 'after', afterSteps: p.kind !== 'check' });
  nodes.push({ kind: 'settings-check' }, { kind: 'commit', check: p.kind === 'check' }, { kind: 'report' });

  return {
    name: p.name,
    kind: p.kind,
    ...(p.description ? { description: p.description } : {}),
    source: p.source,
    params: p.params,
    flags: p.flags,
    forceMulti,
    maxSubjects,
    ...(p.allowFunctions?.length ? { allowFunctions: p.allowFunctions } : {}),
    ...(p.guard.confirmSubject && p.subject?.display !== undefined ? { confirmSubject: p.subject.display } : {}),
    nodes,
  };
}

/** Author SQL with :subject, :set, :param and :flag replaced by reads of the script's own tables. */
function authorSqlOf(policy: Policy): (fragment: SqlFragment) => AuthorSql {
  return (fragment) => ({
    text: fragment.text,
    readsSubject: fragment.parts.some((part) => typeof part !== 'string' && part.ref === 'subject'),
    sql: fragment.parts
      .map((part) => {
        if (typeof part === 'string') return part;
        if (part.ref === 'subject') return `(TABLE ${SUBJECT})`;
        if (policy.sets.some((set) => set.name === part.ref)) return `(TABLE ${setTable(part.ref)})`;
        const flag = policy.flags.find((x) => x.name === part.ref);
        if (flag) return flagRead(flag.name);
        const param = policy.params.find((x) => x.name === part.ref)!;
        const column = quoteIdent(param.name);
        return `(SELECT ${param.normalize ? `${param.normalize}(${column})` : column} FROM ${PARAMS})`;
      })
      .join(''),
  });
}

/** Every table the script needs, so that a missing one is named up front (optional step tables excepted). */
function requiredTables(p: Policy): { name: string; why: string }[] {
  const tables = new Map<string, string>();
  const need = (t: TableName, why: string) => {
    const key = qualified(t);
    if (!tables.has(key)) tables.set(key, why);
  };
  if (p.subject) need(p.subject.table, 'subject table');
  p.sets.forEach((set) => need(set.table, `table of set ${set.name}`));
  p.steps.forEach((s, i) => (s.optional ? undefined : need(s.table, `table of step ${i + 1}`)));
  p.preserve.forEach((r) => need(r.table, 'preserve table'));
  p.wipe?.tables.forEach((t) => need(t, 'wipe table'));
  p.keep.forEach((t) => need(t, 'keep table'));
  return [...tables].map(([name, why]) => ({ name, why }));
}

/**
 * Author SQL may only read. Validation has judged the built-ins (pg_catalog) by name; what any
 * other name means is known only in the database: a function the policy calls that is VOLATILE
 * in the live catalog (a user-defined one, an extension's) stops the run before any author SQL
 * runs. Functions in allow_functions and the harmless volatile ones (random(), ...) are not asked.
 */
function catalogChecked(p: Policy): FunctionName[] {
  const called = new Map<string, FunctionName>();
  for (const f of authorSql(p).flatMap((x) => x.fragment.functions ?? [])) {
    if (needsCatalogCheck(f, p.allowFunctions ?? [])) called.set(`${f.schema ?? ''}.${f.name}`, f);
  }
  return [...called.values()];
}
