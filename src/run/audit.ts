import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { AuditLogError } from '../core/errors.js';
import { ensureDirectory, writeAll } from './durable.js';

/**
 * The audit log: JSON lines, appended and fsynced one by one. An apply writes an `attempt`
 * record just before it sends COMMIT and an `outcome` record once it knows the outcome, both with
 * the same runId: a purge that committed is always in the log, even if the process was killed
 * right after COMMIT. Values that identify a person are written as an HMAC-SHA256 under a key kept
 * beside the log (<log>.key, mode 0600, made on first use): the same email gives the same digest
 * in every record, so runs can be correlated, but the log alone does not reveal it (a plain hash
 * of an email is reversed by a dictionary).
 */
export { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';

export class AuditLog {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    private readonly key: Buffer,
  ) {}

  /**
   * Opens the log for appending (and its key) before anything runs, so a log that cannot be
   * written stops the apply before anything is deleted.
   */
  static open(path: string): AuditLog {
    let fd: number | undefined;
    try {
      ensureDirectory(dirname(path));
      fd = openSync(path, 'a', 0o600);
      return new AuditLog(path, fd, loadKey(`${path}.key`));
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      throw new AuditLogError(`--audit-log ${path}: cannot write there (${(e as Error).message}); nothing was run`, { cause: e });
    }
  }

  pseudonymize(value: string): string {
    return `hmac-sha256:${createHmac('sha256', this.key).update(value, 'utf8').digest('hex')}`;
  }

  /** One line, on disk (fsync) before this returns; a line that could not be written whole is taken back. */
  append(record: object): void {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const size = fstatSync(this.fd).size;
    try {
      writeAll(this.fd, Buffer.from(`${JSON.stringify(record)}\n`, 'utf8'));
      fsyncSync(this.fd);
    } catch (e) {
      try {
        ftruncateSync(this.fd, size);
      } catch {
        /* the error that matters is the write's */
      }
      throw e;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function loadKey(keyPath: string): Buffer {
  try {
    return readFileSync(keyPath);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
  }
  const key = randomBytes(32);
  try {
    writeFileSync(keyPath, key, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
    return readFileSync(keyPath); // another run made it first
  }
}

/** One-off helpers (bench): open, write or hash, close. */
export async function pseudonymize(logPath: string, value: string): Promise<string> {
  const log = AuditLog.open(logPath);
  try {
    return log.pseudonymize(value);
  } finally {
    log.close();
  }
}

export async function appendAudit(logPath: string, record: object): Promise<void> {
  const log = AuditLog.open(logPath);
  try {
    log.append(record);
  } finally {
    log.close();
  }
}
