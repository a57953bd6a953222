/** The runner's pure decisions, without a database: unplanned changes and guards. */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseChanges, type ReportRow, type TableStats } from '../src/run/changes.js';
import { checkConfirmation, databaseAllowed } from '../src/run/guards.js';
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
  - { table: sessions, where: expired }
  - { table: users, where: inactive, cascades: [memberships] }
`);
  const v = validatePolicy(file);
  if (!v.ok) throw new Error(JSON.stringify(v.diagnostics));
  plan = compile(v.policy);
});

const stats = (entries: Record<string, Partial<TableStats>>) =>
  new Map(Object.entries(entries).map(([k, v]) => [k, { inserted: 0, updated: 0, deleted: 0, ...v }]));
const removed = (step: number, target: string, rows: number): ReportRow => ({ item: { kind: 'step', step }, target, outcome: 'removed', rows, detail: null });

describe('analyseChanges', () => {
  it('accepts deletes that match the steps and changes to declared cascades', () => {
    const a = analyseChanges(plan, stats({ 'public.sessions': { deleted: 10 } }), stats({ 'public.sessions': { deleted: 13 }, 'public.users': { deleted: 2 }, 'public.memberships': { deleted: 5, updated: 1 } }), [
      removed(1, 'public.sessions', 3),
      removed(2, 'public.users', 2),
    ]);
    expect(a.problems).toEqual([]);
    expect(a.tables.map((t) => [t.table, t.plannedAs, t.deleted])).toEqual([
      ['public.memberships', 'cascade', 5],
      ['public.sessions', 'step', 3],
      ['public.users', 'step', 2],
    ]);
  });

  it('flags a table no step names, with its numbers', () => {
    const a = analyseChanges(plan, stats({}), stats({ 'public.sessions': { deleted: 3 }, 'public.audit': { inserted: 3 } }), [removed(1, 'public.sessions', 3)]);
    expect(a.problems).toEqual(['unplanned change to public.audit: 3 inserted; no step removes from it and no step declares it in cascades']);
  });

  it('flags extra deletes on a step table (an undeclared cascade from another step) and trigger writes to it', () => {
    const a = analyseChanges(plan, stats({}), stats({ 'public.sessions': { deleted: 5, updated: 1 } }), [removed(1, 'public.sessions', 3)]);
    expect(a.problems).toEqual([
      'public.sessions: 5 rows deleted in all, but the steps removed 3 (a cascade or trigger deleted others; declare it in cascades)',
      "public.sessions: 1 updated besides the steps' deletes (a trigger or rule; declare it in cascades)",
    ]);
  });

  it('only counts what changed inside this run (a difference of two reads)', () => {
    const a = analyseChanges(plan, stats({ 'public.audit': { inserted: 7 } }), stats({ 'public.audit': { inserted: 7 } }), []);
    expect(a).toEqual({ tables: [], problems: [] });
  });

  it('treats tables reached by a wipe as planned', () => {
    const a = analyseChanges(plan, stats({}), stats({ 'public.logs': { deleted: 4 } }), [{ item: { kind: 'wipe' }, target: 'public.logs', outcome: 'emptied', rows: 0, detail: 'listed' }]);
    expect(a.problems).toEqual([]);
  });
});

describe('guards', () => {
  it('matches database globs exactly, * and ? only', () => {
    const guard = { databases: ['*_dev', 'test?', 'pk_*'] };
    expect(['app_dev', 'test1', 'pk_abc'].map((d) => databaseAllowed(guard, d))).toEqual([true, true, true]);
    expect(['app_dev_prod', 'prod', 'test12', 'app.dev', 'xpk_a'].map((d) => databaseAllowed(guard, d))).toEqual([false, false, false, false, false]);
    expect(databaseAllowed({ databases: ['a.b'] }, 'axb')).toBe(false);
    expect(databaseAllowed({}, 'anything')).toBe(true);
  });

  it('needs --confirm, and the database name when the policy says so', async () => {
    await expect(checkConfirmation({}, 'app_dev', undefined, undefined)).rejects.toMatchObject({ exitCode: 6 });
    await expect(checkConfirmation({}, 'app_dev', '', undefined)).resolves.toBeUndefined();
    const guard = { confirm: 'database' as const };
    await expect(checkConfirmation(guard, 'app_dev', '', undefined)).rejects.toThrow('needs --confirm app_dev');
    await expect(checkConfirmation(guard, 'app_dev', 'app_prod', undefined)).rejects.toThrow('does not match the database "app_dev"');
    await expect(checkConfirmation(guard, 'app_dev', 'app_dev', undefined)).resolves.toBeUndefined();
    await expect(checkConfirmation(guard, 'app_dev', '', async () => 'app_dev\n')).resolves.toBeUndefined();
    await expect(checkConfirmation(guard, 'app_dev', '', async () => 'nope')).rejects.toMatchObject({ exitCode: 6 });
  });
});
