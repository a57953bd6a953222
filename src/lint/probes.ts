import type postgres from 'postgres';
import { Rollback } from '../core/errors.js';
import { compile } from '../plan/compile.js';
import { fileStatement, probeStatement } from '../plan/print/index.js';
import { isSetup } from '../plan/query.js';
import type { LoadedFile } from '../load/loadPolicy.js';
import type { Policy } from '../policy.js';
import { describe } from '../validate/schema.js';
import { diagnostic, type LintDiagnostic } from './diagnostic.js';
import type { LintContext } from './graph.js';
import { tableKey as resolveTable } from '../graph/resolve.js';
import { sqlPosition } from '../load/position.js';
import { authorPosition } from '../sql/positions.js';

/**
 * PK-L010: the author's SQL (step and lookup where clauses, preserve rules, expect queries)
 * must plan against the live schema: an unknown column, a type mismatch, a missing function.
 *
 * In one transaction that is always rolled back: the script's own setup (search_path, its
 * temporary parameter and subject tables) runs for real so that :param and :subject resolve
 * exactly as in a run, then the transaction turns read-only and each statement's probe is
 * EXPLAINed (planned, never executed), each in a savepoint so one error does not hide the
 * next. Planning a DELETE takes the same ROW EXCLUSIVE lock a DELETE would, until the rollback;
 * the script's lock_timeout bounds the wait.
 */
export async function probePolicy(sql: postgres.Sql, ctx: LintContext, policy: Policy, file: LoadedFile): Promise<LintDiagnostic[]> {
  const { nodes } = compile(policy);
  const subjectTable = policy.subject && resolveTable(ctx.catalog, policy.subject.table);
  const out: LintDiagnostic[] = [];
  try {
    await sql.begin(async (tx) => {
      await tx.unsafe("SET LOCAL statement_timeout = '1min'");
      let subjectReady = false;
      for (const node of nodes) {
        if (isSetup(node) || node.kind === 'params') {
          await tx.unsafe(fileStatement(node));
        } else if ((node.kind === 'subject-table' || node.kind === 'set-table') && subjectTable) {
          // Fails when the key column is missing, which PK-L002 reports; probes using :subject are then skipped.
          // A set's working table (purgekit_set_<name>) is created the same way; its own probe reports a problem.
          const created = await attempt(tx, fileStatement(node)).then((e) => e === undefined);
          if (node.kind === 'subject-table') subjectReady = created;
        }
      }
      await tx.unsafe('SET LOCAL transaction_read_only = on');
      // A step's probe carries its table's preserve rules: report their error once, at the rule.
      const preserveErrors = new Map<string, Set<string>>();
      for (const node of nodes) {
        const probe = probeStatement(node);
        if (probe === null) continue;
        const { source, table, readsSubject } = probe;
        const target = table && resolveTable(ctx.catalog, table);
        if (table && !target) continue; // an absent table is PK-L001's, or an optional step's
        if (!subjectReady && (node.kind === 'lookup' || node.kind === 'set-fill' || readsSubject)) continue;
        const statement = `EXPLAIN ${probe.sql}`;
        const error = await attempt(tx, statement);
        if (!error) continue;
        if (node.kind === 'preserve' && target) preserveErrors.set(target, (preserveErrors.get(target) ?? new Set()).add(error.message));
        if (node.kind === 'step' && target && preserveErrors.get(target)?.has(error.message)) continue;
        // An overwritten column that does not exist is PK-L013's, located at the column.
        // (redact and hash read the column too: the same column, named without its table.)
        const missing = /^column "(.*)"(?: of relation ".*")? does not exist$/.exec(error.message)?.[1];
        if (node.kind === 'update' && missing !== undefined && node.set.some((c) => c.column === missing)) continue;
        const hint = error.hint ? ` (hint: ${error.hint})` : '';
        const found = diagnostic(file, source, 'PK-L010', `${describe(source)}: ${error.message}${hint}`);
        // At the author's text the server points to (an unknown column, a bad literal), not the start of the where.
        const at = error.position === undefined ? undefined : authorPosition(node, statement, error.position);
        out.push(at ? { ...found, ...lineCol(sqlPosition(file, at.source, at.text, at.offset)) } : found);
      }
      throw new Rollback();
    });
  } catch (e) {
    if (!(e instanceof Rollback)) throw e;
  }
  return out;
}



interface ServerError {
  readonly message: string;
  readonly hint?: string;
  /** 1-based, in characters of the statement. */
  readonly position?: number;
}

const lineCol = ({ line, col }: { line: number; col: number }) => ({ line, col });

/** Runs one statement in a savepoint; a server error is returned (and rolled back to), anything else thrown. */
async function attempt(tx: postgres.TransactionSql, text: string): Promise<ServerError | undefined> {
  try {
    await tx.savepoint((sp) => sp.unsafe(text));
    return undefined;
  } catch (e) {
    if ((e as { name?: string })?.name !== 'PostgresError') throw e;
    const { message, hint, position } = e as { message: string; hint?: string; position?: string };
    return { message, ...(hint ? { hint } : {}), ...(Number(position) > 0 ? { position: Number(position) } : {}) };
  }
}
