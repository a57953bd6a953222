import { PurgekitError, UsageError } from '../core/errors.js';
import { APPLY_OPTIONS } from './apply.js';
import { optional, print, say, type PurgekitCommand } from './common.js';
import { applyOptions, retriesOf, RUN_OPTIONS, withInterrupt } from './run.js';

const pick = <K extends keyof typeof RUN_OPTIONS>(...keys: K[]) => Object.fromEntries(keys.map((k) => [k, RUN_OPTIONS[k]])) as Pick<typeof RUN_OPTIONS, K>;

/** purgekit ledger init | check | replay (docs/LEDGER.md; README: The erasure ledger after a restore). */
export const ledger: PurgekitCommand = {
  command: 'ledger <action> [target]',
  describe: 'The erasure ledger (purgekit.ledger, HMACs of erased subjects): init creates it; check lists erased subjects that are in the database again (a restored dump); replay purges them again; export / import keep it across a restore',
  builder: (y) =>
    y
      .positional('action', { choices: ['init', 'check', 'replay', 'export', 'import'] as const, describe: 'init | check | replay | export | import' })
      .positional('target', { type: 'string', describe: 'check, replay: the purge policy (name, policy file or generated .sql file); import: the file an export wrote (- for stdin)' })
      .options({
        ...pick('connection', 'lock-timeout', 'statement-timeout', 'generated', 'dangerously-run-unreviewed'),
        'stop-on-error': { ...RUN_OPTIONS['stop-on-error'], describe: 'replay: stop at the first subject that fails' },
        retries: { ...RUN_OPTIONS.retries, describe: 'replay: retries of a subject that failed on a transient error (lock timeout, deadlock, ...), with backoff' },
        json: { type: 'boolean', default: false, describe: 'check: one JSON document on stdout (docs/LEDGER.md); replay: the JSON lines of apply --subjects-from --json' },
        since: { type: 'string', describe: 'check, replay: only subjects erased at or after this time (2026-11-25, 2026-11-25T08:00:00Z, or an age: 7d, 12h, 30min)' },
        'show-keys': { type: 'boolean', default: false, describe: 'check: print the key values of the subjects found (they identify people; default: their HMACs only)' },
        flag: { type: 'string', array: true, default: [], describe: "replay: set this flag of the policy (repeatable; the ledger does not record the flags of the original purge): --flag delete_owned_companies" },
        confirm: APPLY_OPTIONS.confirm,
        'audit-log': APPLY_OPTIONS['audit-log'],
      })
      .epilogue(`The key: PURGEKIT_LEDGER_KEY (at least 32 characters; the same for every run against the database). Exit codes: check 0 none found, 10 erased subjects are in the database; replay as apply --subjects-from.`),
  handler: async (args) => {
    const commands = await import('../commands/ledger.js');
    const connection = optional('connection', args['connection']);
    const action = args['action'] as 'init' | 'check' | 'replay' | 'export' | 'import';
    const target = args['target'] as string | undefined;
    if (action === 'export') {
      if (target !== undefined) throw new UsageError('ledger export takes no policy: it writes the whole ledger, as JSON lines, on stdout');
      const { rows } = await commands.ledgerTransfer({ ...connection, say, action, write: print });
      say(`ledger export: ${rows} ${rows === 1 ? 'row' : 'rows'}`);
      return 0;
    }
    if (action === 'import') {
      if (target === undefined) throw new UsageError('ledger import needs the file an export wrote: purgekit ledger import <file> (- for stdin)');
      const { rows, added } = await commands.ledgerTransfer({ ...connection, say, action, file: target });
      say(`ledger import: ${rows} ${rows === 1 ? 'row' : 'rows'} read, ${added} added, ${rows - added!} there already`);
      return 0;
    }
    if (action === 'init') {
      if (target !== undefined) throw new UsageError('ledger init takes no policy: the ledger belongs to the database');
      const { created } = await commands.ledgerInit({ ...connection, say });
      say(created ? 'purgekit.ledger created: every apply of a purge policy against this database now needs PURGEKIT_LEDGER_KEY and records its subjects' : 'purgekit.ledger is there already');
      return 0;
    }
    if (target === undefined) throw new UsageError(`ledger ${action} needs a purge policy: purgekit ledger ${action} <policy>`);
    const common = { target, policiesDir: args['policies'] as string, ...connection, ...optional('since', args['since']) };
    try {
      if (action === 'check') {
        const { output } = await commands.ledgerCheck({ ...common, showKeys: Boolean(args['show-keys']), say });
        if (args['json']) print(JSON.stringify(output, null, 2));
        for (const line of commands.humanCheck(output)) say(line);
        return output.exitCode;
      }
      const retries = retriesOf(args);
      const { exitCode } = await withInterrupt((interrupt, commitSent) =>
        commands.ledgerReplay({
          ...common,
          ...applyOptions(args, interrupt, commitSent),
          stopOnError: Boolean(args['stop-on-error']),
          flags: (args['flag'] as string[] | undefined) ?? [],
          retries,
          backoffMs: 200,
          tty: Boolean(process.stderr.isTTY),
          ...(args['json'] ? { jsonLine: (doc: object) => process.stdout.write(`${JSON.stringify(doc)}\n`) } : {}),
        }),
      );
      return exitCode;
    } catch (error) {
      if (args['json'] && error instanceof PurgekitError) print(JSON.stringify({ version: 1, command: `ledger ${action}`, policy: target, outcome: 'error', exitCode: error.exitCode, error: { code: error.name, message: error.message } }, null, 2));
      throw error;
    }
  },
};
