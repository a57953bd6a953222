import { wipeReach } from '../../compile/compile.js';
import { formatSql } from '../../sql/format.js';
import type { TableName } from '../../policy.js';
import type { PlanNode, SourcePath } from '../nodes.js';
import type { RenderedValues } from '../params.js';
import { isFormatted } from '../query.js';
import { SUBJECT, setTable } from '../sql.js';
import { expectation, expectProbe, KEEP_CHECK, preserve, preserveCheck, preserveProbe, VERDICT } from './checks.js';
import { functionsGuard, subjectGuard, tablesGuard } from './guards.js';
import * as setup from './setup.js';
import { stepProbe, step } from './steps.js';
import { analyze, lookup, lookupProbe, setFill, setProbe, setTableSql, subjectTable } from './subject.js';
import { truncate, WIPE_REACH_TABLE } from './wipe.js';

/**
 * A node's statement in each of the ways it is printed, each one pure function:
 *
 *   fileStatement    the standalone generated file (values: render's filled-in parameter block)
 *   applyStatement   what the runner sends for rehearse and apply (null: nothing; the file's own
 *                    BEGIN and COMMIT are never sent)
 *   dryRunStatement  what a read-only dry run (plan, verify) sends instead: a variant that only
 *                    reads, or null for statements that change data or check what they changed
 *   probeStatement   the author's SQL of the node as one plain statement that EXPLAIN can plan
 *                    without running it: for lint
 *
 * SQL the compiler lays out itself is printed as is; the rest goes through the formatter.
 */
export function fileStatement(node: PlanNode, values?: RenderedValues): string {
  return layout(node, text(node, values));
}

function text(node: PlanNode, values?: RenderedValues): string {
  switch (node.kind) {
    case 'begin':
      return 'BEGIN';
    case 'search-path':
      return setup.searchPath(node.schema);
    case 'lock-timeout':
      return setup.LOCK_TIMEOUT;
    case 'report-reset':
      return setup.REPORT_RESET;
    case 'report-table':
      return setup.REPORT_TABLE;
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
    case 'commit':
      return 'COMMIT';
    case 'report':
      return setup.REPORT_SELECT;
  }
}

export function applyStatement(node: PlanNode): string | null {
  return node.kind === 'begin' || node.kind === 'commit' ? null : fileStatement(node);
}

export function dryRunStatement(node: PlanNode): string | null {
  switch (node.kind) {
    case 'begin':
    case 'commit':
      return null;
    // Lookups and sets without FOR UPDATE; a step counts what it would remove.
    case 'lookup':
      return layout(node, lookup(node, false));
    case 'set-fill':
      return setFill(node, false);
    case 'step':
      return layout(node, step(node, false));
    // Nothing changes in a dry run: no statistics to gather, no TRUNCATE, nothing to compare after.
    case 'analyze':
    case 'wipe':
    case 'keep-check':
    case 'preserve-check':
      return null;
    // After-phase checks describe a database the dry run never produces.
    case 'expect':
    case 'verdict':
      return node.afterSteps ? null : fileStatement(node);
    case 'search-path':
    case 'lock-timeout':
    case 'report-reset':
    case 'report-table':
    case 'settings-snapshot':
    case 'params':
    case 'read-only':
    case 'tables-guard':
    case 'functions-guard':
    case 'subject-table':
    case 'subject-guard':
    case 'set-table':
    case 'preserve':
    case 'wipe-reach-table':
    case 'wipe-reach':
    case 'settings-check':
    case 'report':
      return fileStatement(node);
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
    case 'begin':
    case 'search-path':
    case 'lock-timeout':
    case 'report-reset':
    case 'report-table':
    case 'settings-snapshot':
    case 'params':
    case 'read-only':
    case 'tables-guard':
    case 'functions-guard':
    case 'subject-table':
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
    case 'commit':
    case 'report':
      return null;
  }
}

function layout(node: PlanNode, sql: string): string {
  return isFormatted(node) ? formatSql(sql) : sql;
}
