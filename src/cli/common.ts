/**
 * What the command modules share: the context a command is built in, how they talk to people,
 * and options that mean the same in every command.
 */
import type { CommandModule, Options } from 'yargs';
import { DEFAULT_POLICIES } from '../commands/defaults.js';

export interface CliContext {
  /** The arguments as given: a builder reads the policy a command names from them. */
  readonly argv: readonly string[];
  /**
   * The policy reader, loaded before parsing when argv names a command that takes a policy
   * (yargs runs builders synchronously during completion, so they cannot import it then).
   */
  readonly policies?: Pick<typeof import('./policyOptions.js'), 'declaredOptions' | 'policyNames'>;
}

/** A command module whose handler returns the exit code (cli.ts turns it into the process's). */
export type PurgekitCommand = Omit<CommandModule, 'handler'> & {
  readonly handler: (args: Args) => Promise<number | void>;
};
export type Args = Readonly<Record<string, unknown>> & { readonly _: readonly (string | number)[] };

export const say = (line: string) => process.stderr.write(`${line}\n`);
export const print = (line: string) => process.stdout.write(`${line}\n`);

/** Options of every command. */
export const GLOBAL_OPTIONS = {
  debug: { type: 'boolean', describe: 'Print stack traces of unexpected errors', global: true },
  policies: { type: 'string', default: DEFAULT_POLICIES, describe: 'Directory of policy files', global: true },
} as const satisfies Record<string, Options>;

export const CONNECTION = { type: 'string', describe: 'PostgreSQL URL (default: DATABASE_URL, else the PG* variables)' } as const satisfies Options;

export const PATHS = { type: 'string', array: true, describe: 'Policy files or directories (default: --policies)' } as const;

/** [paths..] as given, else the --policies directory. */
export function pathsOf(args: Args): string[] {
  const paths = args['paths'] as string[] | undefined;
  return paths?.length ? paths : [args['policies'] as string];
}

/** An option's value when it was given as a string. */
export function optional<K extends string>(key: K, value: unknown): { [P in K]?: string } {
  return (typeof value === 'string' ? { [key]: value } : {}) as { [P in K]?: string };
}

/** A question at the terminal (--confirm left empty). */
export async function ask(question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}
