/**
 * The residue scan's options: `purgekit residue` takes the scan's, plan and apply take them
 * behind --residue (src/residue/inRun.ts), where any of them without --residue is a usage error.
 */
import type { Options } from 'yargs';
import { UsageError } from '../core/errors.js';
import type { RunResidueOptions } from '../residue/inRun.js';
import type { Args } from './common.js';

export const SCAN_OPTIONS = {
  schema: { type: 'string', array: true, describe: 'Only these schemas' },
  include: { type: 'string', array: true, default: [], describe: 'Only these tables (name or schema.name, * as wildcard)' },
  exclude: { type: 'string', array: true, default: [], describe: 'Not these tables' },
  'max-seconds': { type: 'string', describe: 'Stop after this many seconds and name the tables not scanned' },
} as const satisfies Record<string, Options>;

export const RUN_RESIDUE_OPTIONS = {
  residue: { type: 'boolean', default: false, describe: "After the steps (plan --rehearse: before the ROLLBACK; apply: after COMMIT), search the database for the subject's identifying values (docs/RESIDUE.md)" },
  'fail-on-residue': { type: 'boolean', default: false, describe: 'With --residue: a finding exits 9 (apply: committed, residue found) or 4 (plan: nothing committed)' },
  ...Object.fromEntries(Object.entries(SCAN_OPTIONS).map(([name, o]) => [name, { ...o, describe: `With --residue: ${o.describe.toLowerCase()}` }])),
} as Record<string, Options>;

/** --max-seconds as a number of seconds; -1 when it is not one (the scan refuses it). */
export function maxSeconds(args: Args): { maxSeconds?: number } {
  if (args['max-seconds'] === undefined) return {};
  const seconds = Number(args['max-seconds']);
  return { maxSeconds: Number.isNaN(seconds) ? -1 : seconds };
}

export function runResidueOptions(args: Args): { residue?: RunResidueOptions } {
  const given = ['fail-on-residue', ...Object.keys(SCAN_OPTIONS)].filter((k) => args[k] !== undefined && args[k] !== false && !(Array.isArray(args[k]) && !args[k].length));
  if (!args['residue']) {
    if (given.length) throw new UsageError(`--${given[0]} goes with --residue`);
    return {};
  }
  const { maxSeconds: seconds } = maxSeconds(args);
  if (seconds !== undefined && !(seconds >= 0)) throw new UsageError('--max-seconds: expected a number of seconds (0 or more)');
  return {
    residue: {
      ...(args['schema'] ? { schemas: args['schema'] as string[] } : {}),
      include: (args['include'] as string[] | undefined) ?? [],
      exclude: (args['exclude'] as string[] | undefined) ?? [],
      ...(seconds !== undefined ? { maxSeconds: seconds } : {}),
      failOnResidue: Boolean(args['fail-on-residue']),
    },
  };
}
