import { kebab } from './names.js';

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
  /** Rolled back, nothing changed, safe to retry: a lock or statement timeout, a deadlock, a serialization failure, a connection lost before COMMIT. */
  transient: 7,
  /** COMMITTED, but work owed after COMMIT (the audit log's outcome record) could not be done. */
  committedPending: 8,
  /** Stopped by SIGINT (128 + 2) or SIGTERM (128 + 15): cancelled, rolled back, cleaned up. */
  interrupted: 130,
  terminated: 143,
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
    super(`--${kebab(param)}: ${reason}`, ExitCode.usage);
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

/**
 * Every SQLSTATE and driver code the runner tells apart, in one place. A failure of a run is
 * classified once, here; the exit code and the wording follow from its kind.
 */
export const SqlState = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  readOnlyTransaction: '25006',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
} as const;

/** Codes postgres.js gives a query whose connection went away (not SQLSTATEs). */
const CONNECTION_GONE = new Set(['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export type FailureKind =
  | 'lock-timeout'
  | 'statement-timeout'
  /** 57014 that is neither our timeout nor our own cancel: pg_cancel_backend from another session. */
  | 'cancelled'
  | 'deadlock'
  | 'serialization'
  | 'connection-lost'
  | 'integrity'
  | 'other';

/** Transient: rolled back as a whole, and the same run may well succeed if tried again (exit 7). */
export const TRANSIENT_KINDS: ReadonlySet<FailureKind> = new Set(['lock-timeout', 'statement-timeout', 'cancelled', 'deadlock', 'serialization', 'connection-lost']);

/**
 * What kind of failure a driver or server error is. 57014 covers a statement timeout and a
 * cancel request alike: the server's message tells them apart ("due to statement timeout" /
 * "due to user request"); when it is translated (lc_messages), `timedOut` says whether the
 * statement had run for the whole --statement-timeout.
 */
export function failureKind(error: { code?: unknown; message?: unknown }, timedOut = false): FailureKind {
  const code = typeof error.code === 'string' ? error.code : '';
  const message = typeof error.message === 'string' ? error.message : '';
  switch (code) {
    case SqlState.lockNotAvailable:
      return 'lock-timeout';
    case SqlState.deadlockDetected:
      return 'deadlock';
    case SqlState.serializationFailure:
      return 'serialization';
    case SqlState.queryCanceled:
      if (/statement timeout/.test(message)) return 'statement-timeout';
      if (/user request/.test(message)) return 'cancelled';
      return timedOut ? 'statement-timeout' : 'cancelled';
    case SqlState.adminShutdown:
    case SqlState.crashShutdown:
    case SqlState.cannotConnectNow:
      return 'connection-lost';
    default:
      if (CONNECTION_GONE.has(code)) return 'connection-lost';
      if (code.startsWith('23')) return 'integrity';
      return 'other';
  }
}

/** --audit-log cannot be opened or written: found before anything is deleted (exit 2). */
export class AuditLogError extends PurgekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.usage, options);
  }
}
