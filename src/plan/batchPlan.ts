import type { ParamDecl } from '../policy.js';
import type { Keyset, Plan, PlanNode, StepNode } from './nodes.js';
import { BATCH_AFTER, BATCH_ROWS } from './print/batch.js';
import { isSetup, steps } from './query.js';
import type { RunValues } from '../values.js';

/**
 * Batched cleanup: the plans the runner (src/run/batched.ts) executes, derived from the
 * compiled plan. Pure. Every derived plan keeps the setup, the guards, the before-expectations
 * and the preserve rules and checks, so each batch transaction is checked like a single run.
 *
 *   batchPlan   one transaction of one step: a batch of a batched step (its keyset set, the
 *               batch's size and last key as two more bound parameters), or a step that is not
 *               batched, whole. After-expectations describe the end state: not here.
 *   finalPlan   the read-only check once every step is done: what each batched step would still
 *               remove (it must be 0, else another pass) and every expectation, after ones
 *               included, against the database the batches left.
 */
const BATCH_PARAMS: readonly ParamDecl[] = [
  { name: BATCH_ROWS, type: 'bigint', personal: false, description: 'rows in this batch (purgekit apply)' },
  { name: BATCH_AFTER, type: 'text', personal: false, description: 'last key committed, JSON array (purgekit apply)' },
];

export function batchedSteps(plan: Plan): StepNode[] {
  return steps(plan).filter((s) => s.batch);
}

export interface Batch {
  readonly step: StepNode;
  readonly keyset?: Keyset;
  /** Rows this batch may remove (batched steps). */
  readonly rows?: number;
  /** max_rows less what earlier batches removed. */
  readonly maxRowsLeft?: number;
}

export function batchPlan(plan: Plan, batch: Batch): Plan {
  const { step } = batch;
  const derived: StepNode = {
    ...step,
    ...(step.batch && batch.keyset ? { batch: { ...step.batch, keyset: batch.keyset } } : {}),
    ...(batch.maxRowsLeft !== undefined ? { maxRows: batch.maxRowsLeft } : {}),
  };
  const nodes: PlanNode[] = [];
  for (const node of withBatchParams(plan).nodes) {
    if ((node.kind === 'expect' || node.kind === 'verdict') && node.afterSteps) continue;
    if (node.kind === 'step') {
      if (node.step === step.step) nodes.push(derived);
      continue;
    }
    nodes.push(node);
  }
  return { ...withBatchParams(plan), nodes };
}

/** The dry run of a batched cleanup (purgekit plan): the plan as one read-only transaction, without the file's refusal. */
export function dryRunPlan(plan: Plan): Plan {
  return { ...plan, nodes: plan.nodes.filter((n) => n.kind !== 'apply-only') };
}

export function finalPlan(plan: Plan): Plan {
  const nodes: PlanNode[] = [];
  for (const node of withBatchParams(plan).nodes) {
    if (node.kind === 'step') {
      // What it would still remove: a count, not checked against max_rows (the batches were).
      if (node.batch) nodes.push(withoutMaxRows(node));
      continue;
    }
    // The batches have run: the database is the one the after-expectations describe.
    if (node.kind === 'expect' || node.kind === 'verdict') nodes.push({ ...node, afterSteps: false });
    else nodes.push(node);
  }
  return { ...withBatchParams(plan), nodes };
}

function withoutMaxRows(step: StepNode): StepNode {
  const { maxRows: _maxRows, ...rest } = step;
  return rest;
}

/**
 * The plan with the batch's two parameters in its parameter table (created if it had none),
 * without the file's apply-only refusal and without after_commit (refused for batched steps).
 */
function withBatchParams(plan: Plan): Plan {
  const params = [...plan.params, ...BATCH_PARAMS];
  const shape = { params, flags: plan.flags, forceMulti: plan.forceMulti, maxSubjects: plan.maxSubjects };
  const nodes: PlanNode[] = [];
  let placed = false;
  for (const node of plan.nodes) {
    if (node.kind === 'apply-only' || node.kind === 'outbox') continue;
    if (node.kind === 'params') {
      nodes.push({ ...node, shape });
      placed = true;
    } else if (!placed && node.kind !== 'begin' && !isSetup(node)) {
      nodes.push({ kind: 'params', policy: plan.name, shape }, node);
      placed = true;
    } else nodes.push(node);
  }
  return { ...plan, params, nodes };
}

/** The run's values with the batch's size and last key (bound as text, cast by the server). */
export function batchValues(values: RunValues, rows: number, after: string | null): RunValues {
  const params = new Map(values.params);
  params.set(BATCH_ROWS, String(rows));
  if (after !== null) params.set(BATCH_AFTER, after);
  return { ...values, params };
}
