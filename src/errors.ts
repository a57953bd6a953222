/**
 * One error base with an exit code; one subclass per kind of failure. User errors are printed
 * as their message alone; anything else is unexpected and prints a stack with --debug.
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  multipleSubjects: 3,
  checkFailed: 4,
  cannotConnect: 5,
  refused: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class PurgekitError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad command-line input: a missing argument, an unknown option, a file that is not there. */
export class UsageError extends PurgekitError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** One or more policy files are invalid; every problem found is carried, not only the first. */
export class InvalidPolicyError extends PurgekitError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'), ExitCode.usage);
    this.diagnostics = diagnostics;
  }
}

/** A value cannot be rendered as a SQL literal (NUL byte, lone surrogate, wrong type). */
export class UnrenderableValueError extends PurgekitError {
  readonly param: string;
  constructor(param: string, reason: string) {
    super(`--${param.replaceAll('_', '-')}: ${reason}`, ExitCode.usage);
    this.param = param;
  }
}

/** generated/ does not match policies/: stale, missing, hand-edited or orphaned files. */
export class DriftError extends PurgekitError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join("\n"), ExitCode.checkFailed);
    this.problems = problems;
  }
}
