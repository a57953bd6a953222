#!/usr/bin/env node
/**
 * The command line: wiring only. Each command is a plain function in commands/; this file maps
 * arguments to it and owns exit codes and the printing of errors.
 */
import type { Argv } from 'yargs';
import { ExitCode, InvalidPolicyError, PurgekitError, formatDiagnostic, DriftError, UsageError } from './core/errors.js';
import { DEFAULT_AUDIT_LOG, DEFAULT_OUT, DEFAULT_POLICIES } from './commands/defaults.js';

// Start-up time is part of the interface: this file loads yargs and errors.ts only. Each handler
// imports its command with import(), so --help loads no command and validate loads neither the
// formatter nor the database driver (README: Performance; npm run bench:startup).

const stderr = (line: string) => process.stderr.write(`${line}\n`);
const stdout = (line: string) => process.stdout.write(`${line}\n`);

/** Options of render that are the command's own; every other --option is a policy param or flag. */
const RENDER_OWN = new Set(['_', '$0', 'policy', 'param', 'param-escaped', 'policies', 'debug', 'help', 'version']);


export async function main(argv: readonly string[]): Promise<number> {
  let debug = argv.includes('--debug');
  try {
    let exit: number = ExitCode.ok;
    const { default: yargs } = await import('yargs');
    await yargs(argv as string[])
      .scriptName('purgekit')
      .usage('$0 <command> [options]\n\nTurn YAML purge policies into reviewable SQL and run it safely.')
      .option('debug', { type: 'boolean', describe: 'Print stack traces of unexpected errors', global: true })
      .option('policies', { type: 'string', default: DEFAULT_POLICIES, describe: 'Directory of policy files', global: true })
      .command(
        'validate [paths..]',
        'Check policy files: schema and semantics, every problem as file:line:col',
        (y: Argv) => y.positional('paths', { type: 'string', array: true, describe: 'Policy files or directories (default: --policies)' }),
        async (args) => {
          const paths = (args.paths as string[] | undefined)?.length ? (args.paths as string[]) : [args.policies as string];
          const { validateFiles } = await import('./validate/validateFiles.js');
          const { policies, diagnostics } = await validateFiles(paths);
          if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
          stderr(`${policies.length} ${policies.length === 1 ? 'policy' : 'policies'} valid`);
        },
      )
      .command(
        'compile [paths..]',
        'Write generated/<name>.sql for each policy (--check: fail if generated/ is out of date)',
        (y: Argv) =>
          y
            .positional('paths', { type: 'string', array: true, describe: 'Policy files or directories (default: --policies)' })
            .option('out', { type: 'string', default: DEFAULT_OUT, describe: 'Directory of generated SQL files' })
            .option('check', { type: 'boolean', default: false, describe: 'Write nothing; exit 4 naming every stale, missing, hand-edited or orphaned file' }),
        async (args) => {
          const explicit = (args.paths as string[] | undefined)?.length;
          const paths = explicit ? (args.paths as string[]) : [args.policies as string];
          const out = args.out as string;
          const { checkCommand, compileCommand } = await import('./commands/compile.js');
          if (args.check) {
            const problems = await checkCommand(paths, out, { orphans: !explicit });
            if (problems.length) throw new DriftError(problems);
            stderr(`${out}/ is up to date`);
            return;
          }
          const { written, unchanged } = await compileCommand(paths, out);
          for (const path of written) stderr(`wrote ${path}`);
          stderr(`${written.length} written, ${unchanged.length} unchanged`);
        },
      )
      .command(
        'render <policy>',
        'Print the standalone script of a policy with its parameters filled in, ready to paste',
        (y: Argv) =>
          y
            .positional('policy', { type: 'string', describe: 'Policy name, policy file, or generated .sql file' })
            .option('param', { type: 'string', array: true, default: [], describe: 'A parameter as name=value (also: --<name> <value>)' })
            .option('param-escaped', { type: 'string', array: true, default: [], describe: 'A parameter as name=value, value with JSON string escapes (\\uFFFD, \\\\, \\")' })
            .epilogue("The policy's params and flags are options too: purgekit render nexus-purge-user --email a@b.c --delete-owned-companies")
            .strict(false)
            .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false }),
        async (args) => {
          const values = Object.fromEntries(Object.entries(args).filter(([k]) => !RENDER_OWN.has(k)));
          const { renderCommand } = await import('./commands/render.js');
          const text = await renderCommand(args.policy as string, { policiesDir: args.policies as string, values, pairs: args.param as string[], escapedPairs: args['param-escaped'] as string[] });
          process.stdout.write(text);
        },
      )
      .command(
        'plan <policy>',
        'Dry run (read-only): what a policy would remove here; --rehearse runs it for real and rolls back',
        (y: Argv) => runOptions(y).option('rehearse', { type: 'boolean', default: false, describe: 'Run every statement for real (same locks as apply), report exact counts incl. cascades and triggers, then roll back' }),
        async (args) => {
          exit = await run('plan', args);
        },
      )
      .command(
        'apply <policy>',
        'Run a policy in one transaction with row-count checks; COMMIT only if every check holds',
        (y: Argv) =>
          runOptions(y)
            .option('confirm', { type: 'string', describe: 'Required. With guard.confirm: database, the database name (typed at a terminal if left empty)' })
            .option('audit-log', { type: 'string', default: DEFAULT_AUDIT_LOG, describe: 'Append one JSON line per apply here' })
            .option('backup', { type: 'string', describe: 'First copy the rows it removes into this new or empty directory (restorable with purgekit restore)' }),
        async (args) => {
          exit = await run('apply', args);
        },
      )
      .command(
        'verify <policy>',
        "Run a check policy's expectations read-only; exit 4 if any fails",
        (y: Argv) => runOptions(y),
        async (args) => {
          exit = await run('verify', args);
        },
      )
      .command(
        'lint [paths..]',
        'Check policies against a live schema: missing tables, FK order, coverage gaps, unindexed FKs, wipe reach, SQL that does not plan',
        (y: Argv) =>
          y
            .positional('paths', { type: 'string', array: true, describe: 'Policy files or directories (default: --policies)' })
            .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' })
            .option('reporter', { choices: ['text', 'json', 'gcc'] as const, default: 'text' as const, describe: 'Output format (docs/LINT.md)' })
            .option('strict', { type: 'boolean', default: false, describe: 'Warnings fail too (exit 1)' })
            .option('verbose', { type: 'boolean', default: false, describe: 'Print long fixes in full (an index on every partition)' }),
        async (args) => {
          const { lintCommand } = await import('./commands/lint.js');
          const { output, exitCode } = await lintCommand({
            verbose: Boolean(args.verbose),
            paths: (args.paths as string[] | undefined)?.length ? (args.paths as string[]) : [args.policies as string],
            ...(typeof args.connection === 'string' ? { connection: args.connection } : {}),
            reporter: args.reporter as 'text' | 'json' | 'gcc',
            strict: Boolean(args.strict),
          });
          process.stdout.write(output);
          exit = exitCode;
        },
      )
      .command(
        'discover',
        'Write a purge policy skeleton for one row of --table and everything that references it, children first',
        (y: Argv) =>
          y
            .option('table', { type: 'string', demandOption: true, describe: 'The table of the rows to purge (name or schema.name)' })
            .option('key', { type: 'string', demandOption: true, describe: 'The column that identifies a row (becomes the lookup parameter)' })
            .option('name', { type: 'string', describe: 'Policy name (default: purge-<table>)' })
            .option('schema', { type: 'string', describe: 'Schema of a bare --table (default public)' })
            .option('out', { type: 'string', describe: 'Write the policy to this file (never overwrites) instead of stdout' })
            .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' }),
        async (args) => {
          const { discoverCommand } = await import('./commands/discover.js');
          const { yaml, path } = await discoverCommand({
            table: args.table as string,
            key: args.key as string,
            ...(typeof args.name === 'string' ? { name: args.name } : {}),
            ...(typeof args.schema === 'string' ? { schema: args.schema } : {}),
            ...(typeof args.out === 'string' ? { out: args.out } : {}),
            ...(typeof args.connection === 'string' ? { connection: args.connection } : {}),
          });
          if (path) stderr(`wrote ${path}; review it, then purgekit validate and compile`);
          else process.stdout.write(yaml);
        },
      )
      .command(
        'restore <dir>',
        'Put the rows of an apply --backup back, in one transaction, parents first; refuses if the backup is altered or a row exists',
        (y: Argv) =>
          y
            .positional('dir', { type: 'string', describe: 'The backup directory (with manifest.json)' })
            .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' })
            .option('confirm', { type: 'string', describe: 'Required: the name of the database to restore into (typed at a terminal if left empty)' })
            .option('json', { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (README: restore --json)' }),
        async (args) => {
          try {
            const { restoreCommand } = await import('./commands/restore.js');
            const result = await restoreCommand({
              dir: args.dir as string,
              ...(typeof args.connection === 'string' ? { connection: args.connection } : {}),
              ...(typeof args.confirm === 'string' ? { confirm: args.confirm } : {}),
              ...(process.stdin.isTTY ? { ask } : {}),
              say: stderr,
            });
            stderr('restored: committed');
            if (args.json) process.stdout.write(`${JSON.stringify({ version: 1, command: 'restore', dir: args.dir, outcome: 'committed', exitCode: 0, ...result }, null, 2)}\n`);
          } catch (error) {
            if (args.json && error instanceof PurgekitError) {
              const doc = { version: 1, command: 'restore', dir: args.dir, outcome: 'error', exitCode: error.exitCode, error: { code: error.name, message: error.message } };
              process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
            }
            throw error;
          }
        },
      )
      .command(
        'counts',
        'Row counts of every table (exact; --estimate from statistics); exit 4 when a --critical table is empty',
        (y: Argv) =>
          y
            .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' })
            .option('critical', { type: 'string', array: true, default: [], describe: 'Tables that must not be empty (name or schema.name; repeat or comma-separate)' })
            .option('estimate', { type: 'boolean', default: false, describe: "Use the planner's estimates instead of counting (no table scans)" })
            .option('schema', { type: 'string', array: true, describe: 'Only these schemas (default: all but the system ones)' })
            .option('json', { type: 'boolean', default: false, describe: 'Print one JSON document on stdout' }),
        async (args) => {
          const { countsCommand } = await import('./commands/counts.js');
          const { output, exitCode, lines } = await countsCommand({
            ...(typeof args.connection === 'string' ? { connection: args.connection } : {}),
            critical: (args.critical as string[]).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean),
            estimate: Boolean(args.estimate),
            ...(args.schema ? { schemas: args.schema as string[] } : {}),
          });
          // The counts are the data: on stdout, unless --json puts the document there.
          if (args.json) process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
          for (const line of lines) (args.json ? stderr : stdout)(line);
          if (output.emptyCritical.length) stderr(`purgekit: critical tables are empty: ${output.emptyCritical.join(', ')}`);
          exit = exitCode;
        },
      )
      .command(
        'residue <policy>',
        "Where a purge policy's subject still appears outside what the policy removes (docs/RESIDUE.md); exit 4 on a finding or an incomplete scan",
        (y: Argv) =>
          y
            .positional('policy', { type: 'string', describe: 'A purge policy: name or file' })
            .option('param', { type: 'string', array: true, default: [], describe: 'A lookup parameter as name=value (also: --<name> <value>)' })
            .option('param-escaped', { type: 'string', array: true, default: [], describe: 'A parameter as name=value, value with JSON string escapes' })
            .option('value', { type: 'string', array: true, default: [], describe: 'An identifying value given directly: name=value (the subject key, an identifier column, a lookup param)' })
            .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' })
            .option('schema', { type: 'string', array: true, describe: 'Only these schemas' })
            .option('include', { type: 'string', array: true, default: [], describe: 'Only these tables (name or schema.name, * as wildcard)' })
            .option('exclude', { type: 'string', array: true, default: [], describe: 'Not these tables' })
            .option('estimate', { type: 'boolean', default: false, describe: 'Read nothing: print what a scan would read (pg_class, pg_stats) and how (EXPLAIN)' })
            .option('max-seconds', { type: 'string', describe: 'Stop after this many seconds and name the tables not scanned' })
            .option('keys', { type: 'string', default: '5', describe: 'Primary keys shown per finding' })
            .option('substring', { type: 'boolean', default: true, describe: 'Also search values as substrings (--no-substring: exact, JSON and array matches only)' })
            .option('audit-log', { type: 'string', default: DEFAULT_AUDIT_LOG, describe: "Its key (<log>.key), if present, gives each value's HMAC in the report" })
            .option('json', { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (docs/residue-output.schema.json)' })
            .strict(false)
            .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false }),
        async (args) => {
          const own = new Set([...RENDER_OWN, 'value', 'connection', 'schema', 'include', 'exclude', 'estimate', 'max-seconds', 'keys', 'substring', 'audit-log', 'json']);
          const seconds = args['max-seconds'] === undefined ? undefined : Number(args['max-seconds']);
          const { residueCommand } = await import('./commands/residue.js');
          const { output, lines, exitCode } = await residueCommand({
            target: args.policy as string,
            policiesDir: args.policies as string,
            values: Object.fromEntries(Object.entries(args).filter(([k]) => !own.has(k))),
            pairs: args.param as string[],
            escapedPairs: args['param-escaped'] as string[],
            valuePairs: args.value as string[],
            ...(typeof args.connection === 'string' ? { connection: args.connection } : {}),
            ...(args.schema ? { schemas: args.schema as string[] } : {}),
            include: args.include as string[],
            exclude: args.exclude as string[],
            estimate: Boolean(args.estimate),
            ...(seconds !== undefined ? { maxSeconds: Number.isNaN(seconds) ? -1 : seconds } : {}),
            keys: /^\d+$/.test(String(args.keys)) ? Number(args.keys) : -1,
            substring: args.substring !== false,
            auditLog: args['audit-log'] as string,
            stderr,
          });
          if (args.json) process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
          for (const line of lines) (args.json ? stderr : stdout)(line);
          exit = exitCode;
        },
      )
      .demandCommand(1, 'name a command: validate, compile, render, plan, apply, verify, restore, lint, counts, discover or residue')
      .strict()
      .help()
      .version()
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(`${message}\nRun purgekit --help for usage.`);
      })
      .parseAsync()
      .then((parsed) => {
        debug = Boolean((parsed as { debug?: boolean }).debug);
      });
    return exit;
  } catch (error) {
    return report(error, debug);
  }
}

/** Options that are the run commands' own; every other --option is a policy param or flag. */
const RUN_OWN = new Set([...RENDER_OWN, 'connection', 'json', 'lock-timeout', 'statement-timeout', 'generated', 'rehearse', 'confirm', 'audit-log', 'backup', 'dangerously-run-unreviewed']);

function runOptions(y: Argv): Argv {
  return y
    .positional('policy', { type: 'string', describe: 'Policy name, policy file, or generated .sql file' })
    .option('param', { type: 'string', array: true, default: [], describe: 'A parameter as name=value (also: --<name> <value>)' })
    .option('param-escaped', { type: 'string', array: true, default: [], describe: 'A parameter as name=value, value with JSON string escapes (\\uFFFD, \\\\, \\")' })
    .option('connection', { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (docs/run-output.schema.json)' })
    .option('lock-timeout', { type: 'string', default: '5s', describe: 'Give up waiting for a lock after this long' })
    .option('statement-timeout', { type: 'string', default: '15min', describe: 'Give up on a statement running longer than this' })
    .option('generated', { type: 'string', default: DEFAULT_OUT, describe: 'Directory of generated SQL files' })
    .option('dangerously-run-unreviewed', { type: 'boolean', default: false, describe: 'Run the policy even when its generated file is missing, stale or edited' })
    .epilogue("The policy's params and flags are options too: purgekit apply nexus-purge-user --email a@b.c --delete-owned-companies --confirm")
    .strict(false)
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false });
}

async function run(command: 'plan' | 'apply' | 'verify', args: Record<string, unknown>): Promise<number> {
  // SIGINT/SIGTERM: the run cancels its statement, rolls back, removes an unfinished backup,
  // writes the audit outcome and exits 130/143. A second signal exits at once (the server still
  // rolls back an open transaction when the connection closes).
  // Once COMMIT is sent, a signal cannot take it back: the run waits for its answer.
  const interrupt = new AbortController();
  const state = { commitSent: false };
  const onSignal = (signal: NodeJS.Signals) => {
    const code = signal === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
    if (interrupt.signal.aborted) process.exit(code);
    stderr(
      state.commitSent
        ? `purgekit: ${signal}: COMMIT was already sent and cannot be taken back: waiting for its answer (${signal} again to exit at once; the audit log's attempt record then says how to find out)`
        : `purgekit: ${signal}: cancelling the running statement and rolling back (${signal} again to exit at once)`,
    );
    interrupt.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runAndPrint(command, args, interrupt.signal, () => (state.commitSent = true));
  } catch (error) {
    // A pipeline asked for JSON: it gets a document even when the run could not start.
    if (args['json'] && error instanceof PurgekitError) {
      const doc = { version: 1, command, policy: args['policy'], outcome: 'error', exitCode: error.exitCode, error: { code: error.name, message: error.message } };
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function runAndPrint(command: 'plan' | 'apply' | 'verify', args: Record<string, unknown>, interrupt: AbortSignal, commitSent: () => void): Promise<number> {
  const color = Boolean(process.stderr.isTTY) && !process.env['NO_COLOR'];
  const [{ runCommand }, { runJson }] = await Promise.all([import('./commands/run.js'), import('./run/output.js')]);
  const { output, exitCode } = await runCommand(command, {
    target: args['policy'] as string,
    policiesDir: args['policies'] as string,
    generatedDir: args['generated'] as string,
    values: Object.fromEntries(Object.entries(args).filter(([k]) => !RUN_OWN.has(k))),
    pairs: args['param'] as string[],
    escapedPairs: args['param-escaped'] as string[],
    ...(typeof args['connection'] === 'string' ? { connection: args['connection'] } : {}),
    lockTimeout: args['lock-timeout'] as string,
    statementTimeout: args['statement-timeout'] as string,
    rehearse: Boolean(args['rehearse']),
    ...(typeof args['confirm'] === 'string' ? { confirm: args['confirm'] } : {}),
    auditLog: (args['audit-log'] as string | undefined) ?? DEFAULT_AUDIT_LOG,
    ...(typeof args['backup'] === 'string' ? { backup: args['backup'] } : {}),
    dangerouslyRunUnreviewed: Boolean(args['dangerously-run-unreviewed']),
    ...(process.stdin.isTTY ? { ask } : {}),
    stderr,
    color,
    interrupt,
    commitSent,
  });
  if (args['json']) process.stdout.write(`${JSON.stringify(runJson(output), null, 2)}\n`);
  return exitCode;
}

async function ask(question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

function report(error: unknown, debug: boolean): number {
  if (error instanceof InvalidPolicyError) {
    for (const d of error.diagnostics) stderr(formatDiagnostic(d));
    stderr(`${error.diagnostics.length} ${error.diagnostics.length === 1 ? 'problem' : 'problems'} found`);
    return error.exitCode;
  }
  if (error instanceof PurgekitError) {
    stderr(`purgekit: ${error.message}`);
    return error.exitCode;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  stderr(`purgekit: unexpected error: ${e.message}`);
  if (debug) stderr(e.stack ?? '');
  else stderr('(run with --debug for details)');
  return ExitCode.unexpected;
}

/** `purgekit --version` alone: the version of package.json, as yargs prints it, without loading yargs. */
async function fastVersion(argv: readonly string[]): Promise<boolean> {
  if (argv.length !== 1 || argv[0] !== '--version') return false;
  const { readFileSync } = await import('node:fs');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  stdout(version);
  return true;
}

const args = process.argv.slice(2); // what yargs' hideBin returns for `node cli.js ...` and the bin
if (!(await fastVersion(args))) process.exitCode = await main(args);
