#!/usr/bin/env node
/**
 * The command line: wiring only. Each command is a module in cli/ (builder + handler) that calls
 * its plain function in commands/; this file registers them, and owns exit codes and the
 * printing of errors.
 *
 * Start-up time is part of the interface (README: Performance; npm run bench:startup): this
 * file loads a lean yargs and errors.ts; a handler imports its command with import(), so --help
 * loads no command and validate loads neither the formatter nor the database driver.
 */
import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { DEFAULT_POLICIES } from './commands/defaults.js';
import { ExitCode, InvalidPolicyError, PurgekitError, UsageError, formatDiagnostic } from './core/errors.js';
import { apply } from './cli/apply.js';
import { GLOBAL_OPTIONS, say, type CliContext, type PurgekitCommand } from './cli/common.js';
import { compile } from './cli/compile.js';
import { completion } from './cli/completion.js';
import { counts } from './cli/counts.js';
import { discover } from './cli/discover.js';
import { ledger } from './cli/ledger.js';
import { lint } from './cli/lint.js';
import { plan } from './cli/plan.js';
import { render } from './cli/render.js';
import { residue } from './cli/residue.js';
import { restore } from './cli/restore.js';
import { outbox } from './cli/outbox.js';
import { validate } from './cli/validate.js';
import { verify } from './cli/verify.js';
import { yargsFor } from './cli/yargs.js';
import { didYouMean } from './validate/didYouMean.js';

/** Commands whose options include a policy's params and flags. */
const POLICY_COMMANDS = new Set(['render', 'plan', 'apply', 'verify', 'residue']);
/**
 * Commands that validate policies, and so parse SQL. plan, apply and verify are not among them:
 * a reviewed generated file runs from its plan artifact without the parser (src/render/artifact.ts).
 */
const PARSING_COMMANDS = new Set(['render', 'residue', 'validate', 'compile', 'lint', 'discover']);

export async function main(argv: readonly string[]): Promise<number> {
  let debug = argv.includes('--debug');
  try {
    const command = argv.find((a) => !a.startsWith('-'));
    const helpOnly = argv.includes('--help') || argv.includes('-h') || argv.includes('--get-yargs-completions');
    // The parser's WASM compiles on a background thread while yargs and the YAML library load.
    if (command && PARSING_COMMANDS.has(command) && !helpOnly) void import('./sql/parser.js').then((p) => p.loadParser()).catch(() => {});
    const needsPolicies = argv.some((a) => POLICY_COMMANDS.has(a));
    const [y, policies] = await Promise.all([yargsFor(argv), needsPolicies ? policyOptions(argv) : undefined]);
    const ctx: CliContext = { argv, ...(policies ? { policies } : {}) };
    let exit: number = ExitCode.ok;
    const wire = (c: PurgekitCommand): CommandModule => ({ ...c, handler: async (args) => void (exit = (await c.handler(args as never)) ?? ExitCode.ok) });
    const commands = [validate, compile, render(ctx), plan(ctx), apply(ctx), verify(ctx), lint, discover, restore, counts, residue(ctx), outbox, ledger];
    await commands
      .reduce((acc, c) => acc.command(wire(c)), y.scriptName('purgekit').usage('$0 <command> [options]\n\nTurn YAML purge policies into reviewable SQL and run it safely.').options(GLOBAL_OPTIONS))
      .completion('completion', 'Print a bash or zsh completion script: purgekit completion >> ~/.bashrc', completion(ctx, POLICY_COMMANDS))
      .demandCommand(1, 'name a command: validate, compile, render, plan, apply, verify, restore, lint, counts, discover, residue, outbox or ledger')
      .strict()
      .help()
      .version(packageVersion())
      .fail((message, error) => {
        if (error) throw error;
        throw new UsageError(`${withHint(message, y)}\nRun purgekit --help for usage.`);
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

/**
 * How a policy command learns the policy's params and flags: from the plan artifact when the
 * policy it most likely names has a current one (no YAML library, no schema), otherwise from
 * the YAML (policyOptions.ts). Should the command name another policy after all, its options
 * come from the full validation the command does anyway.
 */
async function policyOptions(argv: readonly string[]): Promise<NonNullable<CliContext['policies']>> {
  // Completion offers policy names, which only the YAML files give.
  if (!argv.includes('--get-yargs-completions')) {
    const light = await import('./cli/policyArtifact.js');
    const { target, policiesDir } = light.likelyTarget(argv, POLICY_COMMANDS);
    if (target !== undefined && light.declaredFromArtifact(target, policiesDir ?? DEFAULT_POLICIES)) {
      return { declaredOptions: light.declaredFromArtifact, policyNames: () => [] };
    }
  }
  return import('./cli/policyOptions.js');
}

/** yargs' "Unknown argument: chek", with the nearest option of that command. */
function withHint(message: string, yargs: unknown): string {
  const unknown = /^Unknown arguments?: (.+)$/.exec(message)?.[1]?.split(', ');
  const known = Object.keys((yargs as { getOptions(): { key: object } }).getOptions().key);
  const hints = (unknown ?? []).flatMap((u) => didYouMean(u, known) ?? []);
  return hints.length ? `${message} (did you mean ${hints.map((h) => `--${h}`).join(', ')}?)` : message;
}

function report(error: unknown, debug: boolean): number {
  if (error instanceof InvalidPolicyError) {
    for (const d of error.diagnostics) say(formatDiagnostic(d));
    say(`${error.diagnostics.length} ${error.diagnostics.length === 1 ? 'problem' : 'problems'} found`);
    return error.exitCode;
  }
  if (error instanceof PurgekitError) {
    say(`purgekit: ${error.message}`);
    return error.exitCode;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  say(`purgekit: unexpected error: ${e.message}`);
  say(debug ? (e.stack ?? '') : '(run with --debug for details)');
  return ExitCode.unexpected;
}

/** purgekit's own version (a bare .version() would look for the package.json above the cwd). */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

const args = process.argv.slice(2); // what yargs' hideBin returns for `node cli.js ...` and the bin
// `purgekit --version` alone is answered before yargs is loaded.
if (args.length === 1 && args[0] === '--version') process.stdout.write(`${packageVersion()}\n`);
else process.exitCode = await main(args);
