/** The runner's change check with update steps (anonymize:, detach:): pure, without a database. */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseChanges, type ReportRow, type TableStats } from '../src/run/changes.js';
import { compile } from '../src/plan/compile.js';
import type { Plan } from '../src/plan/nodes.js';
import { loadParser } from '../src/sql/parser.js';
import { parsePolicyText } from '../src/load/loadPolicy.js';
import { validatePolicy } from '../src/validate/validatePolicy.js';

let plan: Plan;
beforeAll(async () => {
  await loadParser();
  const file = parsePolicyText('p.yaml', `version: 1
name: p
kind: cleanup
steps:
  - { table: events, where: old, anonymize: { email: null } }
  - { table: comments, where: old, detach: [author_id] }
  - { table: users, where: inactive }
`);
  const v = validatePolicy(file);
  if (!v.ok) throw new Error(JSON.stringify(v.diagnostics));
  plan = compile(v.policy);
});

const stats = (entries: Record<string, Partial<TableStats>>) =>
  new Map(Object.entries(entries).map(([k, v]) => [k, { inserted: 0, updated: 0, deleted: 0, ...v }]));
const row = (step: number, target: string, outcome: string, rows: number): ReportRow => ({ item: { kind: 'step', step }, target, outcome, rows, detail: null });

describe('analyseChanges with update steps', () => {
  it('expects the rows the update steps updated (n_tup_upd): no unplanned change', () => {
    const a = analyseChanges(plan, stats({}), stats({ 'public.events': { updated: 4 }, 'public.comments': { updated: 2 }, 'public.users': { deleted: 1 } }), [
      row(1, 'public.events', 'updated', 4),
      row(2, 'public.comments', 'updated', 2),
      row(3, 'public.users', 'removed', 1),
    ]);
    expect(a.problems).toEqual([]);
    expect(a.tables.map((t) => [t.table, t.plannedAs, t.updated, t.updatedBySteps])).toEqual([
      ['public.comments', 'step', 2, 2],
      ['public.events', 'step', 4, 4],
      ['public.users', 'step', 0, undefined],
    ]);
  });

  it('more rows updated than the steps say (a trigger), or deleted from an updated table, is a problem', () => {
    const a = analyseChanges(plan, stats({}), stats({ 'public.events': { updated: 5, deleted: 1 } }), [row(1, 'public.events', 'updated', 4)]);
    expect(a.problems).toEqual([
      'public.events: 1 rows deleted in all, but the steps removed 0 (a cascade or trigger deleted others; declare it in cascades)',
      'public.events: 5 rows updated in all, but the update steps updated 4 (a trigger or rule updated others; declare it in cascades)',
    ]);
  });

  it('an update step that matched nothing and a table nothing changed: nothing to report', () => {
    const a = analyseChanges(plan, stats({}), stats({}), [row(1, 'public.events', 'updated', 0)]);
    expect(a).toEqual({ tables: [], problems: [] });
  });
});
