#!/usr/bin/env node
/**
 * The command line: wiring only. Each command is a plain function in commands/; this file maps
 * arguments to it and owns exit codes and the printing of errors.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, InvalidPolicyError, PurgekitError, formatDiagnostic, DriftError } from './errors.js';
import { validateFiles } from './validate/validateFiles.js';
import { checkCommand, compileCommand, DEFAULT_OUT, DEFAULT_POLICIES } from './commands/compile.js';
import { renderCommand } from './commands/render.js';

const stderr = (line: string) => process.stderr.write(`${line}\n`);

/** Options of render that are the command's own; every other --option is a policy param or flag. */
const RENDER_OWN = new Set(['_', '$0', 'policy', 'param', 'policies', 'debug', 'help', 'version']);

export async function main(argv: readonly string[]): Promise<number> {
  let debug = argv.includes('--debug');
  try {
    let exit: number = ExitCode.ok;
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
            .epilogue("The policy's params and flags are options too: purgekit render nexus-purge-user --email a@b.c --delete-owned-companies")
            .strict(false)
            .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false }),
        async (args) => {
          const values = Object.fromEntries(Object.entries(args).filter(([k]) => !RENDER_OWN.has(k)));
          const text = await renderCommand(args.policy as string, { policiesDir: args.policies as string, values, pairs: args.param as string[] });
          process.stdout.write(text);
        },
      )
      .demandCommand(1, 'name a command: validate, compile or render')
      .strict()
      .help()
      .version()
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageFailure(`${message}\nRun purgekit --help for usage.`);
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

class UsageFailure extends PurgekitError {
  constructor(message: string) {
    super(message, ExitCode.usage);
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

process.exitCode = await main(hideBin(process.argv));
