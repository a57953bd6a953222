import { wipeReach } from './wipeReach.js';
import type { TableName } from '../../policy.js';
import { quoteLiteral } from '../../sql/quote.js';
import { itemLabel, type AnyStepNode, type PlanNode, type SourcePath } from '../nodes.js';
import type { RenderedValues } from '../params.js';
import { PARAMS, REPORT, REPORT_COLUMNS, SUBJECT, setTable } from '../sql.js';
import { outboxInsert } from '../../outbox/sql.js';
import { expectation, expectProbe, KEEP_CHECK, preserve, preserveCheck, preserveProbe, VERDICT } from './checks.js';
import { functionsGuard, subjectCount, subjectGuard, tablesGuard } from './guards.js';
import * as setup from './setup.js';
import { stepProbe, step } from './steps.js';
import { update, updateProbe } from './update.js';
import { analyze, lookup, lookupProbe, setFill, setProbe, setTableSql, subjectTable } from './subject.js';
import { truncate, WIPE_REACH_TABLE } from './wipe.js';
import { applyOnly, batchStep } from './batch.js';

/**
 * A node's statement in each of the ways it is printed, each one pure function:
 *
 *   fileStatement    the standalone generated file (values: render's filled-in parameter block)
 *   applyStatement   what the runner sends for rehearse and apply: the file's statement, and a
 *                    statement that writes a report row also returns it (RETURNING), so that the
 *                    runner has the report without reading it back; null: not sent (the file's own
 *                    BEGIN and COMMIT, and the closing SELECT of the report)
 *   dryRunStatement  what a read-only dry run (plan, verify) sends instead: a variant that only
 *                    reads, or null for statements that change data or check what they changed
 *   readBack         after a DO block that writes report rows (it cannot return them): the SELECT
 *                    of those rows
 *   probeStatement   the author's SQL of the node as one plain statement that EXPLAIN can plan
 *                    without running it: for lint
 *
 * The compiler lays out all SQL itself; nothing goes through a formatter.
 */
export function fileStatement(node: PlanNode, values?: RenderedValues): string {
  switch (node.kind) {
    case 'begin':
      return 'BEGIN';
    case 'apply-only':
      return applyOnly(node);
    case 'search-path':
      return setup.searchPath(node.schema);
    case 'lock-timeout':
      return setup.LOCK_TIMEOUT;
    case 'report-reset':
      return setup.REPORT_RESET;
    case 'report-table':
      return setup.REPORT_TABLE;
    case 'raise-function':
      return setup.RAISE_FUNCTION;
    case 'settings-snapshot':
      return setup.SETTINGS_SNAPSHOT;
    case 'params':
      return setup.params(node.shape, values);
    case 'read-only':
      return setup.READ_ONLY;
    case 'tables-guard':
      return tablesGuard(node.tables);
    case 'functions-guard':
      return functionsGuard(node.functions);
    case 'subject-table':
      return subjectTable(node.table, node.key);
    case 'lookup':
      return lookup(node, true);
    case 'subject-count':
      return subjectCount(node.table);
    case 'subject-guard':
      return subjectGuard(node);
    case 'analyze':
      return analyze(node.of.kind === 'subject' ? SUBJECT : setTable(node.of.name));
    case 'set-table':
      return setTableSql(node.name, node.table, node.key);
    case 'set-fill':
      return setFill(node, true);
    case 'expect':
      return expectation(node);
    case 'verdict':
      return VERDICT;
    case 'preserve':
      return preserve(node);
    case 'preserve-check':
      return preserveCheck(node);
    case 'step':
      return step(node, true);
    case 'update':
      return update(node, true);
    case 'wipe-reach-table':
      return WIPE_REACH_TABLE;
    case 'wipe-reach':
      return wipeReach(node);
    case 'wipe':
      return truncate(node);
    case 'keep-check':
      return KEEP_CHECK;
    case 'settings-check':
      return setup.SETTINGS_CHECK;
    case 'outbox':
      return outboxInsert(node.policy, node.actions, node.subject, PARAMS);
    case 'commit':
      return 'COMMIT';
    case 'report':
      return setup.REPORT_SELECT;
  }
}

/** A statement as the runner sends it. */
export interface Sent {
  readonly sql: string;
  /** Its result rows are the report rows it wrote (RETURNING). */
  readonly returnsReport: boolean;
  /** A DO block cannot return rows: the SELECT of the report rows it wrote, sent right after it. */
  readonly readBack?: string;
}

/** The statement writes its report row in plain SQL, so it returns it too. */
function returning(sql: string): Sent {
  return { sql: `${sql}\nRETURNING ${REPORT_COLUMNS}`, returnsReport: true };
}

function plain(sql: string): Sent {
  return { sql, returnsReport: false };
}

function stepSent(node: AnyStepNode, change: boolean): Sent {
  const sql = node.kind === 'step' ? step(node, change) : update(node, change);
  if (!node.optional) return returning(sql);
  return { sql, returnsReport: false, readBack: reportRowsOf([itemLabel({ kind: 'step', step: node.step })]) };
}

function reportRowsOf(items: readonly string[]): string {
  return `SELECT ${REPORT_COLUMNS} FROM ${REPORT} WHERE item IN (${items.map(quoteLiteral).join(', ')}) ORDER BY seq`;
}

export function applyStatement(node: PlanNode): Sent | null {
  switch (node.kind) {
    case 'begin':
    case 'commit':
    case 'report':
    case 'apply-only':
      return null;
    case 'step':
      // A batched step: one batch in keyset order, once the runner has read the table's key (print/batch.ts).
      return node.batch?.keyset ? returning(batchStep(node)) : stepSent(node, true);
    case 'update':
      return stepSent(node, true);
    case 'subject-count':
    case 'preserve':
    case 'expect':
      return returning(fileStatement(node));
    case 'wipe-reach':
      return { sql: fileStatement(node), returnsReport: false, readBack: reportRowsOf([itemLabel({ kind: 'wipe' }), itemLabel({ kind: 'keep' })]) };
    case 'search-path':
    case 'lock-timeout':
    case 'report-reset':
    case 'report-table':
    case 'raise-function':
    case 'settings-snapshot':
    case 'params':
    case 'read-only':
    case 'tables-guard':
    case 'functions-guard':
    case 'subject-table':
    case 'lookup':
    case 'subject-guard':
    case 'analyze':
    case 'set-table':
    case 'set-fill':
    case 'verdict':
    case 'preserve-check':
    case 'wipe-reach-table':
    case 'wipe':
    case 'keep-check':
    case 'settings-check':
    case 'outbox':
      return plain(fileStatement(node));
  }
}

export function dryRunStatement(node: PlanNode): Sent | null {
  switch (node.kind) {
    // Lookups and sets without FOR UPDATE; a step counts what it would remove.
    case 'lookup':
      return plain(lookup(node, false));
    case 'set-fill':
      return plain(setFill(node, false));
    case 'step':
    case 'update':
      return stepSent(node, false);
    // Nothing changes in a dry run: no statistics to gather, no TRUNCATE, nothing to compare after.
    case 'analyze':
    case 'wipe':
    case 'keep-check':
    case 'preserve-check':
    // The side effects a run would queue are listed by plan from the node itself (src/outbox/report.ts).
    case 'outbox':
      return null;
    // After-phase checks describe a database the dry run never produces.
    case 'expect':
    case 'verdict':
      return node.afterSteps ? null : applyStatement(node);
    case 'begin':
    case 'apply-only':
    case 'search-path':
    case 'lock-timeout':
    case 'report-reset':
    case 'report-table':
    case 'raise-function':
    case 'settings-snapshot':
    case 'params':
    case 'read-only':
    case 'tables-guard':
    case 'functions-guard':
    case 'subject-table':
    case 'subject-count':
    case 'subject-guard':
    case 'set-table':
    case 'preserve':
    case 'wipe-reach-table':
    case 'wipe-reach':
    case 'settings-check':
    case 'commit':
    case 'report':
      return applyStatement(node);
  }
}

/** A lint probe: the statement to EXPLAIN, where its SQL sits in the policy, the table it targets. */
export interface Probe {
  readonly sql: string;
  readonly source: SourcePath;
  /** Preserve rules and steps: the table the probe's rows come from (lint skips it if absent). */
  readonly table?: TableName;
  /** Some of its SQL reads :subject (lint skips it when the subject table cannot be made). */
  readonly readsSubject: boolean;
}

export function probeStatement(node: PlanNode): Probe | null {
  switch (node.kind) {
    case 'lookup':
      return { sql: lookupProbe(node), source: node.source, readsSubject: node.where.readsSubject };
    case 'set-fill':
      return { sql: setProbe(node), source: node.source, readsSubject: node.where.readsSubject };
    case 'expect':
      return { sql: expectProbe(node), source: node.source, readsSubject: node.query.readsSubject };
    case 'preserve':
      return { sql: preserveProbe(node), source: node.source, table: node.table, readsSubject: node.condition.where.readsSubject };
    case 'step':
      return { sql: stepProbe(node), source: node.source, table: node.table, readsSubject: Boolean(node.where?.readsSubject) || node.keep.some((k) => k.where.readsSubject) };
    case 'update':
      return {
        sql: updateProbe(node), source: node.source, table: node.table,
        readsSubject: Boolean(node.where?.readsSubject) || node.keep.some((k) => k.where.readsSubject) || node.set.some((c) => c.value.kind === 'expression' && c.value.sql.readsSubject),
      };
    case 'begin':
    case 'apply-only':
    case 'search-path':
    case 'lock-timeout':
    case 'report-reset':
    case 'report-table':
    case 'raise-function':
    case 'settings-snapshot':
    case 'params':
    case 'read-only':
    case 'tables-guard':
    case 'functions-guard':
    case 'subject-table':
    case 'subject-count':
    case 'subject-guard':
    case 'analyze':
    case 'set-table':
    case 'verdict':
    case 'preserve-check':
    case 'wipe-reach-table':
    case 'wipe-reach':
    case 'wipe':
    case 'keep-check':
    case 'settings-check':
    case 'outbox':
    case 'commit':
    case 'report':
      return null;
  }
}
