import { ExitCode, InvalidPolicyError } from '../core/errors.js';
import { lintPolicies } from '../lint/lint.js';
import { count, report, type ReporterName } from '../lint/reporters.js';
import { connect, connected } from '../db/connect.js';
import { validateFiles } from '../validate/validateFiles.js';
import { DEFAULT_POLICIES } from './compile.js';

export interface LintOptions {
  /** Policy files or directories (default: policies/). */
  readonly paths: readonly string[];
  /** PostgreSQL URL; default DATABASE_URL, else the PG* variables. */
  readonly connection?: string;
  readonly reporter: ReporterName;
  /** Warnings fail too. */
  readonly strict: boolean;
  /** Long fixes in full (a partitioned table's index, partition by partition). */
  readonly verbose?: boolean;
}

/** Lint found an error (or, with --strict, a warning). */
const LINT_FAILED = 1;

/**
 * purgekit lint: validate the policies, then check them against a live schema (docs/LINT.md).
 * Exit 0 clean, 1 errors (warnings only with strict); an invalid policy throws
 * InvalidPolicyError (exit 2) before connecting, an unreachable server ConnectionError (exit 5).
 */
export async function lintCommand(options: LintOptions): Promise<{ output: string; exitCode: number }> {
  const paths = options.paths.length ? options.paths : [DEFAULT_POLICIES];
  const { policies, files, diagnostics: invalid } = await validateFiles(paths);
  if (invalid.length) throw new InvalidPolicyError(invalid);
  const conn = connect(options.connection);
  try {
    const diagnostics = await connected(conn, (sql) => lintPolicies(sql, policies, files, { verbose: options.verbose === true }));
    const { errors, warnings } = count(diagnostics);
    const exitCode = errors || (options.strict && warnings) ? LINT_FAILED : ExitCode.ok;
    return { output: report(options.reporter, diagnostics, { policies: policies.length, verbose: options.verbose === true }), exitCode };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}
