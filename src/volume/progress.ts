/**
 * Progress of a --subjects-from run on stderr: at a terminal a cli-progress bar (subjects done,
 * rate, ETA) with the failures printed above it; elsewhere one line per batch (and one per
 * subject not found or failed).
 */
import cliProgress from 'cli-progress';

export interface VolumeProgress {
  /** A batch ended with `subjects` subjects settled; `lines` are what a log shows, `failed` ones are shown at a terminal too. */
  batch(lines: readonly string[], subjects: number, failed: boolean): void;
  /** A message that is not about one batch (a retry, --stop-on-error). */
  note(line: string): void;
  stop(): void;
}

export function volumeProgress(total: number, tty: boolean, say: (line: string) => void): VolumeProgress {
  if (!tty) return { batch: (lines) => lines.forEach((l) => say(l)), note: say, stop: () => {} };
  const bars = new cliProgress.MultiBar(
    { format: 'subjects {bar} {value}/{total} | {rate}/s | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, stream: process.stderr, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(total, 0, { rate: '0.0' });
  const started = Date.now();
  let done = 0;
  return {
    batch(lines, subjects, failed) {
      done += subjects;
      if (failed) for (const line of lines) bars.log(`${line}\n`);
      bar.update(done, { rate: (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1) });
    },
    note: (line) => bars.log(`${line}\n`),
    stop: () => bars.stop(),
  };
}
