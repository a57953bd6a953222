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
  /** COMMITTED, and apply --residue --fail-on-residue found the subject's values still in the database (src/residue/inRun.ts). */
  committedResidue: 9,
  /** Stopped by SIGINT (128 + 2) or SIGTERM (128 + 15): cancelled, rolled back, cleaned up. */
  interrupted: 130,
  terminated: 143,
  /** purgekit ledger check: subjects the erasure ledger says were erased are in the database again (docs/LEDGER.md). */
  ledgerFound: 10,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The base of every error purgekit means to raise. `code` names the kind of failure for
 * programs (stable, kebab-case; a database error's SQLSTATE is `sqlState`), `exitCode` is what
 * the CLI exits with, and a driver or file-system error behind it is the `cause`.
 */
export class PurgekitError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  constructor(code: string, message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad command-line input: a missing argument, an unknown option, a file that is not there. */
export class UsageError extends PurgekitError {
  constructor(message: string) {
    super('usage', message, ExitCode.usage);
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
    super('invalid-policy', diagnostics.map(formatDiagnostic).join('\n'), ExitCode.usage);
    this.diagnostics = diagnostics;
  }
}

/** A value cannot be rendered as a SQL literal (NUL byte, lone surrogate, wrong type). */
export class UnrenderableValueError extends PurgekitError {
  readonly param: string;
  constructor(param: string, reason: string) {
    // The option's spelling (kebab() of names.ts): this module imports nothing, since every command
    // loads it and names.ts pulls in the parser-backed quoteIdent.
    super('unrenderable-value', `--${param.replaceAll('_', '-')}: ${reason}`, ExitCode.usage);
    this.param = param;
  }
}

/** generated/ does not match policies/: stale, missing, hand-edited or orphaned files. */
export class DriftError extends PurgekitError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('drift', problems.join('\n'), ExitCode.checkFailed);
    this.problems = problems;
  }
}

/** A string cannot be written as a SQL literal (NUL byte, lone surrogate); values.ts names the option. */
export class LiteralError extends PurgekitError {
  constructor(reason: string) {
    super('unrenderable-literal', reason, ExitCode.usage);
  }
}

/** A generated file that no longer matches its policy or was edited by hand. */
export class StalePlanError extends PurgekitError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super('stale-plan', `${file}: ${reason}`, ExitCode.usage);
    this.file = file;
  }
}

/** A guard refused the run before anything was sent: exit 6, nothing changed. */
export class RefusedError extends PurgekitError {
  constructor(message: string) {
    super('refused', message, ExitCode.refused);
  }
}

/**
 * purgekit restore refused, changing nothing: the backup is incomplete or altered (a file's
 * sha256 or row count differs from the manifest) or a row to restore already exists.
 */
export class RestoreRefused extends PurgekitError {
  constructor(message: string) {
    super('restore-refused', message, ExitCode.checkFailed);
  }
}

/** The server could not be reached or refused us: exit 5. */
export class ConnectionError extends PurgekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('cannot-connect', message, ExitCode.cannotConnect, options);
  }
}

/** apply --backup could not write or verify the backup: the run rolls back. */
export class BackupError extends PurgekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('backup-failed', message, ExitCode.unexpected, options);
  }
}

/**
 * Not a failure: thrown inside a transaction callback to leave it rolled back on purpose (a
 * dry run, a lint probe), and caught by the code that threw it.
 */
export class Rollback extends Error {}

/**
 * SQLSTATEs the script raises, so that the runner and people can tell checks apart.
 * Class PK is not used by PostgreSQL.
 */
export const GuardCode = {
  noLookup: 'PK001',
  noSubject: 'PK002',
  multipleSubjects: 'PK003',
  expectFailed: 'PK004',
  preserveViolated: 'PK005',
  countMismatch: 'PK006',
  keepReached: 'PK007',
  tableMissing: 'PK008',
  tooManyRows: 'PK009',
  settingsChanged: 'PK010',
  volatileFunction: 'PK011',
  /** Batched cleanup: the generated file is for purgekit apply only (src/plan/print/batch.ts). */
  applyOnly: 'PK012',
} as const;
export type GuardName = keyof typeof GuardCode;

const GUARD_NAMES: ReadonlyMap<string, GuardName> = new Map(Object.entries(GuardCode).map(([name, code]) => [code, name as GuardName]));

/** The guard a SQLSTATE is, or undefined when it is not one of the script's PK codes. */
export function guardOf(code: unknown): GuardName | undefined {
  return typeof code === 'string' ? GUARD_NAMES.get(code) : undefined;
}

/**
 * What a run that stopped at a guard exits with: nothing to purge is not a failure, a missing
 * lookup or an unvouched VOLATILE function is the caller's input, more subjects than allowed
 * has its own code, and every other guard is a check that failed.
 */
export function guardExitCode(guard: GuardName): ExitCode {
  switch (guard) {
    case 'noSubject':
      return ExitCode.ok;
    case 'noLookup':
    case 'volatileFunction':
    case 'applyOnly':
      return ExitCode.usage;
    case 'multipleSubjects':
      return ExitCode.multipleSubjects;
    case 'expectFailed':
    case 'preserveViolated':
    case 'countMismatch':
    case 'keepReached':
    case 'tableMissing':
    case 'tooManyRows':
    case 'settingsChanged':
      return ExitCode.checkFailed;
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
    super('audit-log', message, ExitCode.usage, options);
  }
}

/** The fields of a server error the driver (postgres.js) hands over, when it has them. */
interface DriverError {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly detail?: unknown;
  readonly hint?: unknown;
  readonly position?: unknown;
}

/**
 * A PostgreSQL or driver error, typed: `kind` says what happened (failureKind), `sqlState` the
 * server's code (or the driver's, such as CONNECTION_CLOSED), and the driver's error is the cause.
 */
export class DatabaseError extends PurgekitError {
  /** guard for GuardError, else failureKind's answer. */
  readonly kind: FailureKind | 'guard';
  readonly sqlState: string;
  readonly detail?: string;
  readonly hint?: string;
  /** 1-based character offset of the error in the statement, as the server gives it. */
  readonly position?: number;
  constructor(kind: FailureKind | 'guard', error: DriverError, exitCode: ExitCode, code: string = kind) {
    super(code, typeof error.message === 'string' ? error.message : String(error.message ?? error), exitCode, { cause: error });
    this.kind = kind;
    this.sqlState = typeof error.code === 'string' ? error.code : '';
    if (typeof error.detail === 'string') this.detail = error.detail;
    if (typeof error.hint === 'string') this.hint = error.hint;
    if (error.position !== undefined && Number.isFinite(Number(error.position))) this.position = Number(error.position);
  }
}

/** One of the script's guards raised (PK001...PK011): the transaction rolled back. */
export class GuardError extends DatabaseError {
  readonly guard: GuardName;
  constructor(guard: GuardName, error: DriverError) {
    super('guard', error, guardExitCode(guard));
    this.guard = guard;
  }
}

/** A DatabaseError class for one kind, with the exit code that kind always has. */
function ofKind(kind: FailureKind, exitCode: ExitCode) {
  return class extends DatabaseError {
    constructor(error: DriverError) {
      super(kind, error, exitCode);
    }
  };
}

/** 55P03: a lock was not granted within lock_timeout (--lock-timeout). */
export class LockTimeoutError extends ofKind('lock-timeout', ExitCode.transient) {}
/** 57014 from statement_timeout (--statement-timeout). */
export class StatementTimeoutError extends ofKind('statement-timeout', ExitCode.transient) {}
/** 57014 from a cancel request: pg_cancel_backend from another session, or our own on a signal. */
export class CancelledError extends ofKind('cancelled', ExitCode.transient) {}
/** 40P01. */
export class DeadlockError extends ofKind('deadlock', ExitCode.transient) {}
/** 40001. */
export class SerializationError extends ofKind('serialization', ExitCode.transient) {}
/** The connection went away (server shutdown, reset, closed) before an answer came. */
export class ConnectionLostError extends ofKind('connection-lost', ExitCode.transient) {}
/** Class 23: a unique, foreign-key, not-null or check constraint refused a change. */
export class IntegrityError extends ofKind('integrity', ExitCode.checkFailed) {}

/** The class of each kind; a new FailureKind without one is a type error here. */
const CLASS_OF_KIND: { readonly [K in Exclude<FailureKind, 'other'>]: new (error: DriverError) => DatabaseError } = {
  'lock-timeout': LockTimeoutError,
  'statement-timeout': StatementTimeoutError,
  cancelled: CancelledError,
  deadlock: DeadlockError,
  serialization: SerializationError,
  'connection-lost': ConnectionLostError,
  integrity: IntegrityError,
};

/**
 * The typed error for a driver or server error (slonik's model): a guard's PK code, a timeout,
 * a deadlock and so on each have their class; anything else is a DatabaseError of kind other.
 * `timedOut` as for failureKind.
 */
export function databaseError(error: DriverError, timedOut = false): DatabaseError {
  const guard = guardOf(error.code);
  if (guard) return new GuardError(guard, error);
  const kind = failureKind(error, timedOut);
  return kind === 'other' ? new DatabaseError(kind, error, ExitCode.unexpected) : new CLASS_OF_KIND[kind](error);
}
