import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import type { OutboxNode, Plan } from '../plan/nodes.js';
import type { AuditLog } from '../run/audit.js';
import { flagIsSet } from '../run/willRun.js';
import type { RunValues } from '../values.js';
import { describeAction } from './spec.js';
import { missingEnv, workOutbox, type JobOutcome } from './worker.js';

/**
 * What plan / apply do about after_commit (hooked into commands/run.ts in a few lines):
 * before anything runs, the outbox must exist and every ${VAR} be set (a usage error, exit 2,
 * before any delete); after COMMIT, this transaction's jobs are run (bounded retries, backoff);
 * `sideEffects` in --json says what was queued and how each job ended.
 */
export const APPLY_ATTEMPTS = 3;
export const BACKOFF_MS = 200;

export interface SideEffects {
  /** Jobs queued: apply, the jobs its transaction wrote; plan, actions x matched subjects (null: not known). */
  readonly queued: number | null;
  readonly actions: readonly { readonly action: number; readonly kind: string; readonly description: string; readonly forEach: string | null }[];
  /** apply: how each job ended after COMMIT (empty for plan and rehearse). */
  readonly jobs: readonly JobOutcome[];
}

/** The plan's outbox node; with the run's values, only the actions this run queues (if: flags), undefined when none. */
export function outboxNode(plan: Plan, values?: RunValues): OutboxNode | undefined {
  const node = plan.nodes.find((n): n is OutboxNode => n.kind === 'outbox');
  if (!node || !values) return node;
  const actions = node.actions.filter((a) => !a.flag || flagIsSet(plan.flags, values, a.flag));
  return actions.length ? { ...node, actions } : undefined;
}

export async function outboxExists(sql: postgres.Sql): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`SELECT to_regclass('purgekit.outbox') IS NOT NULL AS ok`;
  return Boolean(row?.ok);
}

/** rehearse and apply write the jobs: refuse before the transaction if they could not (or could not run). */
export async function preflight(sql: postgres.Sql, plan: Plan, mode: string, env: NodeJS.ProcessEnv, say: (line: string) => void, values: RunValues): Promise<void> {
  const node = outboxNode(plan, values);
  if (!node) return;
  const exists = await outboxExists(sql);
  if (mode === 'plan') {
    if (!exists) say(`warning: ${plan.name} queues side effects in purgekit.outbox, which this database does not have: run purgekit outbox init before apply`);
    return;
  }
  if (!exists) throw new UsageError(`${plan.name} has after_commit side effects, and this database has no purgekit.outbox to queue them in: run purgekit outbox init (nothing was run)`);
  if (mode !== 'apply') return;
  const missing = missingEnv(node.actions.map((a) => a.spec), env);
  if (missing.length) throw new UsageError(`${plan.name}'s after_commit reads ${missing.map((m) => `\${${m}}`).join(', ')}, not set in the environment (nothing was run)`);
}

export function planned(plan: Plan, subjects: number | null, values: RunValues): SideEffects | undefined {
  const node = outboxNode(plan, values);
  if (!node) return undefined;
  const perRun = node.actions.filter((a) => !a.forEach).length;
  const queued = node.actions.some((a) => a.forEach) ? null : node.subject ? (subjects === null ? null : subjects * perRun) : perRun;
  return {
    queued,
    actions: node.actions.map((a) => ({
      action: a.action,
      kind: a.spec.kind,
      description: describeAction(a.spec),
      forEach: a.forEach ? `${a.forEach.table.schema}.${a.forEach.table.name}` : node.subject ? 'subject' : null,
    })),
    jobs: [],
  };
}

/** After COMMIT: this transaction's jobs, each tried APPLY_ATTEMPTS times. Never throws: what is left is pending work. */
export async function runCommitted(
  sql: postgres.Sql,
  plan: Plan,
  xid: string | undefined,
  options: { audit?: AuditLog; runId: string; env: NodeJS.ProcessEnv; say: (line: string) => void; values: RunValues },
): Promise<{ effects: SideEffects; owed?: string }> {
  const base = planned(plan, null, options.values)!;
  if (!xid) return { effects: base, owed: 'the side effects were queued, but this run could not tell which jobs are its own: run purgekit outbox run' };
  try {
    const { outcomes: jobs, leased } = await workOutbox(sql, { xid, attempts: APPLY_ATTEMPTS, backoffMs: BACKOFF_MS, env: options.env, runId: options.runId, say: options.say, ...(options.audit ? { audit: options.audit } : {}) });
    const failed = jobs.filter((j) => j.status !== 'done');
    const effects = { ...base, queued: jobs.length + leased, jobs };
    const owed = [
      ...(failed.length ? [`${failed.length} of ${jobs.length + leased} side effects did not succeed (they stay queued: purgekit outbox run)`] : []),
      // An outbox run claimed some first: they are not done until it says so.
      ...(leased ? [`${leased} side ${leased === 1 ? 'effect is' : 'effects are'} being run by another worker (purgekit outbox list)`] : []),
    ];
    return owed.length ? { effects, owed: owed.join('; ') } : { effects };
  } catch (e) {
    return { effects: base, owed: `the side effects could not be run (${(e as Error).message}); they stay queued: purgekit outbox run` };
  }
}

export function describePlanned(effects: SideEffects): string[] {
  const count = effects.queued === null ? '' : ` (${effects.queued} ${effects.queued === 1 ? 'job' : 'jobs'})`;
  return [`after COMMIT, queued in purgekit.outbox${count}:`, ...effects.actions.map((a) => `  ${a.action}. ${a.description}${a.forEach && a.forEach !== 'subject' ? ` for each ${a.forEach} row` : a.forEach ? ' for each subject' : ''}`)];
}

/** For the apply's outcome record: how its side effects ended (each job has its own side-effect record too). */
export function auditSummary(effects: SideEffects | undefined): { sideEffects?: { queued: number | null; done: number; failed: number } } {
  if (!effects) return {};
  const done = effects.jobs.filter((j) => j.status === 'done').length;
  return { sideEffects: { queued: effects.queued, done, failed: effects.jobs.length - done } };
}
