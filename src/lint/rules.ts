import type { ForeignKey } from '../catalog/catalog.js';
import { removedBy, deleteReach } from '../graph/delete.js';
import { blocks, dependents, detaches, referencing } from '../graph/graph.js';
import { tableKey } from '../graph/resolve.js';
import { truncateReach } from '../graph/truncate.js';
import { qualified } from '../core/names.js';
import type { LoadedFile, PathSegment } from '../load/loadPolicy.js';
import type { Policy, TableName } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';
import { didYouMean } from '../validate/didYouMean.js';
import { describe } from '../validate/schema.js';
import { diagnostic, type LintDiagnostic } from './diagnostic.js';
import { volatileFunctions } from './volatileFunctions.js';
import { detachedBefore } from './updateOrder.js';
import {
  createIndexFix, createIndexFixSummary, fkKey, fkText, pathText, policyRef, type LintContext,
} from './graph.js';

/**
 * The schema rules: pure functions of the live catalog, a validated policy and its file. Each
 * returns its diagnostics located at the policy's YAML. The rule that needs a database session
 * (PK-L010, does the SQL plan) is in probes.ts. Codes and severities: diagnostic.ts, docs/LINT.md.
 */
export type Rule = (ctx: LintContext, policy: Policy, file: LoadedFile) => LintDiagnostic[];

/** A step whose table exists (an optional step on an absent table takes part in nothing). */
interface PresentStep {
  readonly index: number;
  readonly table: string;
}

/** The delete steps whose table exists (an update step, anonymize: or detach:, removes nothing). */
function presentSteps(ctx: LintContext, policy: Policy): PresentStep[] {
  return policy.steps.flatMap((s, index) => {
    const table = tableKey(ctx.catalog, s.table);
    return table && !s.update ? [{ index, table }] : [];
  });
}

/** Tables some step declares it changes (`cascades:`): the runner accepts changes there. */
function declaredCascades(ctx: LintContext, policy: Policy): Set<string> {
  return new Set(policy.steps.flatMap((s) => s.cascades.flatMap((c) => tableKey(ctx.catalog, c) ?? [])));
}

const stepPath = (s: PresentStep): PathSegment[] => ['steps', s.index, 'table'];

/** PK-L001: a table the policy names is absent (a required one errors; an optional step's table is fine). */
export const missingTables: Rule = (ctx, policy, file) => {
  const out: LintDiagnostic[] = [];
  const names = [...ctx.catalog.tables.keys()].map((t) => policyRef(ctx.catalog, t, policy.schema));
  const check = (t: TableName, path: PathSegment[], consequence: string, severity?: 'warning') => {
    if (tableKey(ctx.catalog, t)) return;
    const written = t.schema === policy.schema ? t.name : `${t.schema}.${t.name}`;
    const hint = didYouMean(written, names);
    out.push(diagnostic(file, path, 'PK-L001', `${describe(path)}: table ${qualified(t)} does not exist${hint ? ` (did you mean ${hint}?)` : ''}; ${consequence}`, severity));
  };
  if (policy.subject) check(policy.subject.table, ['subject', 'table'], 'the script fails with PK008');
  policy.sets.forEach((set) => check(set.table, ['sets', set.name, 'table'], 'the script fails with PK008'));
  policy.steps.forEach((s, i) => {
    if (!s.optional) check(s.table, ['steps', i, 'table'], 'the script fails with PK008 (optional: true skips a step whose table is absent)');
    s.cascades.forEach((c, j) => check(c, ['steps', i, 'cascades', j], 'a change to the table meant here would count as unplanned', 'warning'));
  });
  policy.preserve.forEach((p, i) => check(p.table, ['preserve', i, 'table'], 'the script fails with PK008'));
  policy.wipe?.tables.forEach((t, i) => check(t, ['wipe', 'tables', i], 'the script fails with PK008'));
  policy.keep.forEach((t, i) => check(t, ['keep', i], 'the script fails with PK008'));
  return out;
};

/** PK-L002: a column the policy names (the subject key, identifiers, display, search) is absent from its table. */
export const missingColumns: Rule = (ctx, policy, file) => {
  const s = policy.subject;
  const table = s && tableKey(ctx.catalog, s.table);
  if (!s || !table) return [];
  const columns = ctx.catalog.tables.get(table)!.columns.map((c) => c.name);
  const named: [PathSegment[], string][] = [[['subject', 'key'], s.key], ...s.identifiers.map((c, i): [PathSegment[], string] => [['subject', 'identifiers', i], c])];
  // guard.confirm: subject's display column and the interactive pick's search columns.
  if (s.display !== undefined) named.push([['subject', 'display'], s.display]);
  s.search?.forEach((c, i) => named.push([['subject', 'search', i], c]));
  return named.flatMap(([path, column]) => {
    if (columns.includes(column)) return [];
    const hint = didYouMean(column, columns);
    return [diagnostic(file, path, 'PK-L002', `${describe(path)}: column ${quoteIdent(column)} of ${table} does not exist${hint ? ` (did you mean ${hint}?)` : ''}`)];
  });
};

/**
 * PK-L003: a step deletes rows (itself or by ON DELETE CASCADE) that a later step's table
 * references by a NO ACTION or RESTRICT foreign key, so the earlier delete fails while the
 * referencing rows are still there. Foreign keys checked only at COMMIT are exempt.
 */
export const stepOrder: Rule = (ctx, policy, file) => {
  const out: LintDiagnostic[] = [];
  const steps = presentSteps(ctx, policy);
  const blocking = (from: string, into: ReadonlyMap<string, unknown>) =>
    ctx.catalog.foreignKeys.filter((fk) => fk.table === from && fk.references !== from && into.has(fk.references) && blocks(fk) && !ctx.deferred.has(fkKey(fk)));
  for (const [a, first] of steps.entries()) {
    const removed = removedBy(ctx.catalog, first.table);
    for (const later of steps.slice(a + 1)) {
      const removedLater = removedBy(ctx.catalog, later.table);
      for (const fk of blocking(later.table, removed)) {
        if (detachedBefore(ctx, policy, fk, first.index)) continue;
        const via = removed.get(fk.references)!;
        const deletes = via.length
          ? `steps[${first.index}] deletes from ${first.table}, which removes ${fk.references} by ON DELETE CASCADE (${pathText(first.table, via)}),`
          : `steps[${first.index}] deletes from ${first.table}`;
        // Would the other order fail too? Then the two tables form a cycle no order resolves.
        const reverse = [...removed.keys()].flatMap((t) => blocking(t, removedLater))[0];
        const fix = reverse
          ? `moving steps[${later.index}] first fails too (${reverse.table} references ${reverse.references} by ${fkText(reverse)}): make one of the two foreign keys ON DELETE SET NULL or DEFERRABLE INITIALLY DEFERRED`
          : `move steps[${later.index}] before steps[${first.index}]`;
        out.push(
          diagnostic(
            file,
            stepPath(first),
            'PK-L003',
            `${deletes} before steps[${later.index}] deletes from ${later.table}, whose ${fkText(fk)} references ${fk.references}: the delete fails while such a row exists; ${fix}`,
          ),
        );
      }
    }
  }
  return out;
};

/**
 * PK-L004: a table whose rows belong to the subject (it references the subject's table through
 * NO ACTION, RESTRICT or CASCADE foreign keys; past a SET NULL the schema keeps rows on purpose)
 * that no step removes from and no step declares in cascades, where either no ON DELETE action
 * reaches it or it also references a removed table by a blocking foreign key (a cascade from
 * one parent does not remove the rows that reference another).
 *
 * PK-L005: a column named like the subject's key (see keyLikeNames) with no foreign key, in a
 * table whose rows the plan does not remove (no step, no ON DELETE CASCADE; a table declared in
 * cascades for a SET NULL keeps its rows): they may belong to the subject, and nothing checks it.
 *
 * Both only when the plan removes the subject's rows: a purge that keeps the subject
 * (expire-sessions) leaves nothing dangling.
 */
export const coverage: Rule = (ctx, policy, file) => {
  const s = policy.subject;
  const subject = s && tableKey(ctx.catalog, s.table);
  if (policy.kind !== 'purge' || !s || !subject) return [];
  const { catalog } = ctx;
  const steps = presentSteps(ctx, policy);
  // A table an update step (anonymize:, detach:) changes is handled on purpose: its rows stay.
  const updated = policy.steps.flatMap((x) => (x.update ? (tableKey(catalog, x.table) ?? []) : []));
  const stepTables = new Set([...steps.map((x) => x.table), ...updated]);
  const declared = declaredCascades(ctx, policy);
  const removed = new Map<string, { from: string; path: readonly ForeignKey[] }>();
  const nulled = new Set<string>();
  for (const step of steps) {
    if (!removed.has(step.table)) removed.set(step.table, { from: step.table, path: [] });
    const reach = deleteReach(catalog, step.table);
    for (const r of reach.removed) if (!removed.has(r.table)) removed.set(r.table, { from: step.table, path: r.path });
    for (const r of reach.nulled) nulled.add(r.table);
  }
  if (!removed.has(subject)) return [];

  const out: LintDiagnostic[] = [];
  for (const { table, path } of dependents(catalog, subject, (fk) => !detaches(fk))) {
    if (stepTables.has(table) || declared.has(table)) continue;
    const blocker = catalog.foreignKeys.find((fk) => fk.table === table && fk.references !== table && removed.has(fk.references) && blocks(fk));
    const reached = removed.get(table);
    if ((reached || nulled.has(table)) && !blocker) continue;
    const add = `add a step for ${policyRef(catalog, table, policy.schema)}`;
    const belongs = path.length > 1 ? ` (it belongs to the subject through ${pathText(subject, path)})` : '';
    let message: string;
    if (blocker && reached) {
      message = `${table} is removed only where ON DELETE CASCADE reaches it (${pathText(reached.from, reached.path)}), but its ${fkText(blocker)} references ${blocker.references}, which this policy deletes from: its other rows that reference removed rows make the purge fail; ${add}`;
    } else if (blocker) {
      message = `${table} references ${blocker.references} by ${fkText(blocker)}${belongs}, and no step removes from it or declares it in cascades: a row of it that references a removed row makes the purge fail; ${add}`;
    } else {
      message = `${table} belongs to the subject through ${pathText(subject, path)}, but no step removes from it, declares it in cascades, or reaches it by ON DELETE CASCADE; ${add}`;
    }
    out.push(diagnostic(file, ['subject', 'table'], 'PK-L004', message));
  }

  // A table declared in cascades only because a SET NULL key reaches it keeps its rows: its
  // unlinked key-like columns still hold the subject's ids, so only removed tables are skipped.
  const names = keyLikeNames(catalog.tables.get(subject)!.name, s.key);
  for (const t of catalog.tables.values()) {
    if (t.qualified === subject || removed.has(t.qualified)) continue; // (an updated table keeps its rows too)
    for (const column of t.columns) {
      if (!names.has(normalize(column.name))) continue;
      if (catalog.foreignKeys.some((fk) => fk.table === t.qualified && fk.columns.includes(column.name))) continue;
      out.push(
        diagnostic(
          file,
          ['subject', 'key'],
          'PK-L005',
          `${t.qualified}.${quoteIdent(column.name)} is named like a key of ${subject} but no foreign key says so, and no step removes from ${t.qualified}: if its rows belong to the subject, add a step for ${policyRef(catalog, t.qualified, policy.schema)} (a foreign key would let lint check it)`,
        ),
      );
    }
  }
  return out;
};

/**
 * Column names (normalized: lower case, no underscores) that look like a reference to the
 * subject: <table><key> and <table>id with the table name as is and singular (User/id:
 * userid, so userId, user_id, UserID), and the key itself unless it is a bare `id`
 * (user_profiles/user_id: user_id anywhere).
 */
export function keyLikeNames(table: string, key: string): Set<string> {
  const t = normalize(table);
  const singular = t.endsWith('ies') ? `${t.slice(0, -3)}y` : t.endsWith('s') && !t.endsWith('ss') ? t.slice(0, -1) : t;
  const k = normalize(key);
  const names = new Set([`${t}${k}`, `${singular}${k}`, `${t}id`, `${singular}id`]);
  if (k !== 'id') names.add(k);
  return names;
}

function normalize(name: string): string {
  return name.toLowerCase().replaceAll('_', '');
}

/**
 * PK-L006: a foreign key without a covering index that references a table the plan deletes
 * from (a step's table or one ON DELETE CASCADE reaches): every removed row makes PostgreSQL
 * look up referencing rows, a sequential scan of the referencing table each time.
 */
export const unindexedForeignKeys: Rule = (ctx, policy, file) => {
  const out: LintDiagnostic[] = [];
  const seen = new Set<ForeignKey>();
  for (const step of presentSteps(ctx, policy)) {
    const removed = removedBy(ctx.catalog, step.table);
    for (const fk of ctx.catalog.foreignKeys) {
      if (fk.indexed || seen.has(fk) || !removed.has(fk.references)) continue;
      seen.add(fk);
      const via = removed.get(fk.references)!;
      const columns = fk.columns.map(quoteIdent).join(', ');
      out.push(
        diagnostic(
          file,
          stepPath(step),
          'PK-L006',
          `${fk.table} has no index on (${columns}), its foreign key ${quoteIdent(fk.name)} to ${fk.references}: every row this step removes from ${fk.references}${via.length ? ` (by ON DELETE CASCADE: ${pathText(step.table, via)})` : ''} makes PostgreSQL scan ${fk.table} for rows referencing it; fix: ${(ctx.verbose ? createIndexFix : createIndexFixSummary)(ctx.catalog, fk)}`,
        ),
      );
    }
  }
  return out;
};

/**
 * PK-L007 / PK-L008: TRUNCATE ... CASCADE empties every table with a foreign key to an emptied
 * one, whatever its ON DELETE action: a keep table among them is an error (the script refuses
 * with PK007), an unlisted one a warning naming the path.
 * PK-L009: TRUNCATE ... RESTRICT (cascade: false) fails when an unlisted table references a
 * listed one, rows or not.
 */
export const wipeReach: Rule = (ctx, policy, file) => {
  const w = policy.wipe;
  if (!w) return [];
  const { catalog } = ctx;
  const listed = w.tables.flatMap((t, i) => {
    const table = tableKey(catalog, t);
    return table ? [{ i, table }] : [];
  });
  const listedTables = new Set(listed.map((l) => l.table));
  const out: LintDiagnostic[] = [];
  if (!w.cascade) {
    for (const l of listed) {
      for (const fk of referencing(catalog, l.table)) {
        if (listedTables.has(fk.table)) continue;
        out.push(
          diagnostic(
            file,
            ['wipe', 'tables', l.i],
            'PK-L009',
            `TRUNCATE ... RESTRICT fails: ${fk.table} references ${l.table} by foreign key ${quoteIdent(fk.name)} and is not listed; list it too, or set cascade: true (with keep for what must survive)`,
          ),
        );
      }
    }
    return out;
  }
  const keep = new Map<string, number>();
  policy.keep.forEach((t, k) => {
    const table = tableKey(catalog, t);
    if (table && !keep.has(table)) keep.set(table, k);
  });
  const accepted = new Set(w.reach.flatMap((t) => tableKey(catalog, t) ?? []));
  const reach = truncateReach(catalog, listed.map((l) => l.table));
  for (const [table, r] of reach) {
    const k = keep.get(table);
    if (k !== undefined) {
      out.push(
        diagnostic(
          file,
          ['keep', k],
          'PK-L007',
          `the wipe's TRUNCATE ... CASCADE empties this keep table: ${pathText(r.from, r.path)}; the script refuses with PK007. Take ${r.from} out of the wipe, or change the foreign key`,
        ),
      );
    } else if (!accepted.has(table)) {
      out.push(
        diagnostic(
          file,
          ['wipe', 'tables', listed.find((l) => l.table === r.from)!.i],
          'PK-L008',
          `TRUNCATE ... CASCADE also empties ${table}, which is not listed: ${pathText(r.from, r.path)}; list it in wipe.tables or wipe.reach if that is intended, or add it to keep to make the wipe refuse`,
        ),
      );
    }
  }
  return out;
};

/**
 * PK-L011: a step's delete removes rows elsewhere by ON DELETE CASCADE or updates them by SET
 * NULL / SET DEFAULT, into a table no earlier step has emptied and no step declares in
 * cascades. `purgekit apply` fails such a run as an unplanned change whenever it touches a row.
 */
export const undeclaredCascades: Rule = (ctx, policy, file) => {
  const out: LintDiagnostic[] = [];
  const declared = declaredCascades(ctx, policy);
  const steps = presentSteps(ctx, policy);
  for (const [a, step] of steps.entries()) {
    const earlier = new Set(steps.slice(0, a).map((x) => x.table));
    const reach = deleteReach(ctx.catalog, step.table);
    for (const r of [...reach.removed, ...reach.nulled]) {
      if (declared.has(r.table) || earlier.has(r.table)) continue;
      const fk = r.path[r.path.length - 1]!;
      const does = fk.onDelete === 'cascade' ? 'removes rows of' : fk.onDelete === 'set null' ? 'sets NULL in' : 'sets defaults in';
      const name = policyRef(ctx.catalog, r.table, policy.schema);
      out.push(
        diagnostic(
          file,
          stepPath(step),
          'PK-L011',
          `deleting from ${step.table} ${does} ${r.table} (${pathText(step.table, r.path)}, ON DELETE ${fk.onDelete.toUpperCase()}), and no step declares it in cascades: apply fails a run in which that changes a row; add cascades: [${name}] to this step${r.table === step.table ? '' : `, or a step for ${name} before it`}`,
        ),
      );
    }
  }
  return out;
};

export const RULE_FUNCTIONS: readonly Rule[] = [missingTables, missingColumns, stepOrder, coverage, unindexedForeignKeys, wipeReach, undeclaredCascades, volatileFunctions];

/** Every schema rule on one policy. */
export function lintPolicy(ctx: LintContext, policy: Policy, file: LoadedFile): LintDiagnostic[] {
  return RULE_FUNCTIONS.flatMap((rule) => rule(ctx, policy, file));
}
