/**
 * Keeps a long --subjects-from run's memory flat. Each batch allocates a run's worth of short-
 * lived objects (a connection, the plan's statements, the report); V8 lets its heap grow well
 * past what is live before a full collection (100,000 subjects: a peak RSS of 182 MB, while the
 * same kind of run under --max-old-space-size=40 needed 104 MB). So between batches, once the
 * heap has grown GROWTH bytes past what the last full collection left, one is asked for: every
 * few hundred subjects, a few milliseconds each.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

const GROWTH = 24 * 1024 * 1024;

let gc: (() => void) | undefined;
let live = 0;

export function collectIfGrown(): void {
  if (process.memoryUsage().heapUsed - live < GROWTH) return;
  if (!gc) {
    // The collector's own entry point, exposed for this call only (as node --expose-gc would).
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
  live = process.memoryUsage().heapUsed;
}
