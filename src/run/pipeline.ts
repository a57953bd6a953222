import type postgres from 'postgres';
import type { PlanNode } from '../plan/nodes.js';

/**
 * The runner's statements, sent without waiting for each answer: the `postgres` driver writes
 * queries issued inside sql.begin() back to back on the one connection (pipelining), so a run
 * costs the server's time plus about one round trip instead of one round trip per statement.
 * Values stay bound ($1, $2, ...): each query is still its own Parse/Bind/Execute.
 *
 * The answers are taken in the order the statements were sent (drain). The first statement
 * that failed is the one reported, with its own heading (`at`): after it the server answers
 * every later statement of the transaction with 25P02 (in failed transaction), which is dropped.
 */
export interface Queued {
  readonly at: string | undefined;
  /** The plan node (its index in plan.nodes) whose statement this is; none for the runner's own. */
  readonly node?: number | undefined;
  readonly query: { cancel: () => unknown };
  /** Settles when the answer is in: the rows, or the error (never rejects). */
  readonly settled: Promise<{ rows?: readonly postgres.Row[]; error?: unknown; done: number }>;
  readonly onRows?: ((rows: readonly postgres.Row[]) => void) | undefined;
  /** A step: its time is measured from the answer before it to its own. */
  readonly step?: { readonly step: number; readonly table: string } | undefined;
}

export interface DrainHooks {
  /** The statement now awaited (its heading), for the failure's `at` and an interrupt's cancel. */
  readonly awaiting: (at: string | undefined, node: number | undefined, query: { cancel: () => unknown }, since: number) => void;
  /** A step's answer came in after `ms`. */
  readonly stepDone?: (step: { readonly step: number; readonly table: string }, ms: number) => void;
  /** While a step's answer is awaited: starts its slow-step timer; the returned function stops it. */
  readonly waitingOnStep?: (step: { readonly step: number; readonly table: string }) => () => void;
}

/** bench/run.ts: told when each pipelined statement's answer came in (performance.now()). */
export const pipelineTrace: { answered?: ((text: string, at: number) => void) | undefined } = {};

export class Pipeline {
  private queue: Queued[] = [];
  private lastDone = performance.now();

  constructor(
    private readonly tx: postgres.TransactionSql,
    private readonly hooks: DrainHooks,
  ) {}

  /**
   * Sends `text` now, as one simple-protocol query (no values: those go through sendBound); its
   * answer is read at the next drain.
   */
  send(text: string, at: string | undefined, options: { onRows?: (rows: readonly postgres.Row[]) => void; step?: Queued['step']; node?: number } = {}): void {
    if (this.queue.length === 0) this.lastDone = performance.now();
    const query = this.tx.unsafe(text);
    const answered = (done: number) => (pipelineTrace.answered?.(text, done), done);
    const settled = query.then(
      (rows) => ({ rows: rows as readonly postgres.Row[], done: answered(performance.now()) }),
      (error: unknown) => ({ error, done: answered(performance.now()) }),
    );
    this.queue.push({ at, node: options.node, query, settled, onRows: options.onRows, step: options.step });
  }

  /** Waits for every answer sent so far, in order; throws the first statement's error. */
  async drain(): Promise<void> {
    const queue = this.queue;
    this.queue = [];
    let failure: { error: unknown } | undefined;
    for (const entry of queue) {
      if (failure) {
        await entry.settled;
        continue;
      }
      this.hooks.awaiting(entry.at, entry.node, entry.query, this.lastDone);
      const stop = entry.step ? this.hooks.waitingOnStep?.(entry.step) : undefined;
      const result = await entry.settled.finally(() => stop?.());
      if (result.error !== undefined) {
        failure = { error: result.error };
        continue;
      }
      if (entry.step) this.hooks.stepDone?.(entry.step, Math.round(result.done - this.lastDone));
      this.lastDone = result.done;
      entry.onRows?.(result.rows!);
    }
    if (failure) throw failure.error;
  }

  /**
   * A statement with bound values, after every answer sent so far. The driver describes an
   * unprepared statement with parameters first (its own round trip) and would not keep it in
   * order with the queries pipelined behind it, so it is a barrier: drain, then send, then wait.
   */
  async sendBound(text: string, params: readonly (string | null)[], at: string | undefined): Promise<readonly postgres.Row[]> {
    await this.drain();
    const query = this.tx.unsafe(text, params as string[]);
    this.hooks.awaiting(at, undefined, query, performance.now());
    const rows = await query;
    this.lastDone = performance.now();
    pipelineTrace.answered?.(text, this.lastDone);
    return rows;
  }

  /** Nothing sent is waiting for its answer. */
  get empty(): boolean {
    return this.queue.length === 0;
  }
}

/** What RunControl.beforeNode (--batch-size, src/volume/batchLookup.ts) may use: the run's pipeline, the node's heading, the mode's printer. */
export type NodeContext = { readonly pipe: Pipeline; readonly at: string | undefined; readonly index: number; readonly print: (node: PlanNode) => { readonly sql: string } | null };
