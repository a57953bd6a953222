/**
 * --batch-size: several subjects in ONE transaction. The plan's own lookups run once per subject,
 * inside the batch's transaction, exactly as the reviewed file runs them for one subject: the
 * parameter block is set to that subject's values (copied from a working table the runner fills
 * with bound values, never spliced), the lookup INSERTs fill pg_temp.purgekit_subject, and what
 * they found is moved into pg_temp.purgekit_batch_subject under the subject's ordinal. Then each
 * subject's matches are counted and checked as the single run's subject guard checks them
 * (several matches without --force-multi, a matched row kept by a preserve rule): one that fails
 * raises the same guard (PK003, PK005), naming its line, and the batch rolls back whole. Else the
 * union of the keys goes back into purgekit_subject, and every node after the lookups (the
 * subject count and guard, the locks, the steps, preserve and expectation checks, the runner's
 * unplanned-change check) runs once over it, as for one subject.
 *
 * Why this and not one set-based lookup over a parameter table of N rows: the author's lookup
 * SQL reads the parameter block as a one-row table; a set-based form would be another query
 * than the reviewed one, with its own plan. Measured (100,000 users, nexus-purge-user's two
 * lookups by email, 50 subjects, server-side only): per subject 36 ms for the 50 (0.7 ms a
 * subject), the set-based join 1.0 ms, or 8.5 ms once the parameter rows were analysed (another
 * plan for the ORs). The set-based form is faster, but a batch of 50 costs about 16 ms a subject
 * in all (bench/volume.ts), so the per-subject lookups are a few percent of it; they keep the
 * reviewed statement, its plan, and each subject's own matches.
 */
import { qualified } from '../core/names.js';
import { GuardCode, type Plan, type PlanNode, type SubjectGuardNode } from '../plan/nodes.js';
import { PARAMS, preservedSql, SUBJECT } from '../plan/sql.js';
import type { NodeContext } from '../run/pipeline.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { oneLine } from '../core/names.js';
import type { RunValues } from '../values.js';

const BATCH_PARAMS = 'pg_temp.purgekit_batch_params';
const BATCH_SUBJECT = 'pg_temp.purgekit_batch_subject';
const ORD = 'purgekit_ord';

export interface BatchMember {
  /** 1-based line of the subjects file. */
  readonly line: number;
  readonly values: RunValues;
}

/** What the lookups of one batch found, per subject (filled in during the run). */
export interface BatchTally {
  /** line -> rows its lookups matched (0: not found). */
  readonly matched: Map<number, number>;
  /** Lines that fail the subject guard on their own, with why (several matches, preserved). */
  readonly refused: Map<number, { readonly code: string; readonly message: string }>;
}

/** RunControl.beforeNode for a batch: the lookups of every member, then the per-subject guard. */
export function batchLookup(plan: Plan, members: readonly BatchMember[], forceMulti: boolean, tally: BatchTally): (node: PlanNode, context: NodeContext) => Promise<boolean> {
  const guard = plan.nodes.find((n): n is SubjectGuardNode => n.kind === 'subject-guard');
  const lookups = plan.nodes.filter((n) => n.kind === 'lookup');
  if (!guard || lookups.length === 0) throw new Error(`${plan.name}: --batch-size needs a purge plan with lookups`);
  const key = quoteIdent(guard.key);
  const names = plan.params.map((p) => quoteIdent(p.name));
  return async (node, { pipe, at, print }) => {
    switch (node.kind) {
      case 'subject-table': {
        // Before the subject table: in a dry run the transaction turns read-only after the last working table is made.
        pipe.send(`CREATE TEMP TABLE purgekit_batch_params ON COMMIT DROP AS\nSELECT 0 AS ${ORD}, * FROM ${PARAMS} WITH NO DATA`, at);
        pipe.send(`CREATE TEMP TABLE purgekit_batch_subject ON COMMIT DROP AS\nSELECT 0 AS ${ORD}, ${key} FROM ${qualified(node.table)} WITH NO DATA`, at);
        const rows = members.map((m, i) => ({ [ORD]: i + 1, ...Object.fromEntries(plan.params.map((p) => [p.name, m.values.params.get(p.name) ?? null])) }));
        // Bound as text, parsed by each column's type as the single run's ($1::text::type) is.
        await pipe.sendBound(`INSERT INTO ${BATCH_PARAMS} (${ORD}, ${names.join(', ')})\nSELECT ${ORD}, ${names.join(', ')} FROM json_populate_recordset(NULL::${BATCH_PARAMS}, $1::text::json)`, [JSON.stringify(rows)], at);
        return false;
      }
      case 'lookup': {
        if (node !== lookups[0]) return true;
        const texts = lookups.map((l) => print(l)!.sql);
        members.forEach((_, i) => {
          const ord = i + 1;
          pipe.send(`UPDATE ${PARAMS} SET (${names.join(', ')}) = (SELECT ${names.join(', ')} FROM ${BATCH_PARAMS} WHERE ${ORD} = ${ord})`, at);
          for (const text of texts) pipe.send(text, at);
          pipe.send(`WITH found AS (DELETE FROM ${SUBJECT} RETURNING ${key})\nINSERT INTO ${BATCH_SUBJECT} SELECT ${ord}, ${key} FROM found`, at);
        });
        return true;
      }
      case 'subject-count': {
        await checkEach(pipe, at);
        pipe.send(`INSERT INTO ${SUBJECT} SELECT DISTINCT ${key} FROM ${BATCH_SUBJECT}`, at);
        // Each subject's matches were held to the policy's max above; the batch's union may hold more.
        if (plan.forceMulti) pipe.send(`UPDATE ${PARAMS} SET force_multi = true`, at);
        return false;
      }
      default:
        return false;
    }
  };

  async function checkEach(pipe: NodeContext['pipe'], at: string | undefined): Promise<void> {
    const table = qualified(guard!.table);
    const rules = guard!.preserved.map((rule) => `bool_or(EXISTS (SELECT FROM ${table} WHERE ${key} = b.${key} AND (${preservedSql(rule)})))`);
    let rows: readonly Record<string, unknown>[] = [];
    pipe.send(
      `SELECT b.${ORD} AS ord, count(*)::int AS matched, ARRAY[${rules.length ? rules.join(', ') : ''}]::boolean[] AS preserved\nFROM ${BATCH_SUBJECT} AS b GROUP BY 1`,
      at,
      { onRows: (r) => (rows = r) },
    );
    await pipe.drain();
    for (const m of members) tally.matched.set(m.line, 0);
    for (const row of rows) {
      const member = members[Number(row['ord']) - 1]!;
      const matched = Number(row['matched']);
      tally.matched.set(member.line, matched);
      const kept = (row['preserved'] as boolean[]).findIndex(Boolean);
      if (matched > guard!.max && !forceMulti) {
        tally.refused.set(member.line, { code: GuardCode.multipleSubjects, message: `${matched} ${guard!.table.name} rows matched, more than ${guard!.max}` });
      } else if (kept >= 0) {
        const rule = guard!.preserved[kept]!;
        tally.refused.set(member.line, { code: GuardCode.preserveViolated, message: `a matched ${guard!.table.name} row is preserved by preserve rule ${rule.rule} (${oneLine(rule.where.text)})` });
      }
    }
    if (tally.refused.size === 0) return;
    // Several matches raise PK003 (exit 3) as the single run's guard does; they are named last, next to the runner's --force-multi hint.
    const refused = [...tally.refused].sort(([a, x], [b, y]) => (x.code === y.code ? a - b : x.code === GuardCode.multipleSubjects ? 1 : -1));
    const code = refused.some(([, r]) => r.code === GuardCode.multipleSubjects) ? GuardCode.multipleSubjects : refused[0]![1].code;
    const message = refused.map(([line, r]) => `line ${line}: ${r.message}`).join('; ');
    pipe.send(`SELECT pg_temp.purgekit_raise(${quoteLiteral(code)}, ${quoteLiteral(`batch refused by the subject guard: ${message}`)})`, at);
  }
}
