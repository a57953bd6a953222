import { createHmac, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The audit log: one JSON line per apply, appended. Values that identify a person are written
 * as an HMAC-SHA256 under a key kept beside the log (<log>.key, mode 0600, made on first use):
 * the same email gives the same digest in every record, so runs can be correlated, but the log
 * alone does not reveal it (a plain hash of an email is reversed by a dictionary).
 */
export const DEFAULT_AUDIT_LOG = '.purgekit/audit.jsonl';

export async function pseudonymize(logPath: string, value: string): Promise<string> {
  const keyPath = `${logPath}.key`;
  let key = await readFile(keyPath).catch(() => undefined);
  if (!key) {
    await mkdir(dirname(keyPath), { recursive: true });
    key = randomBytes(32);
    await writeFile(keyPath, key, { mode: 0o600, flag: 'wx' }).catch(async () => {
      key = await readFile(keyPath); // another run made it first
    });
  }
  return `hmac-sha256:${createHmac('sha256', key!).update(value, 'utf8').digest('hex')}`;
}

export async function appendAudit(logPath: string, record: object): Promise<void> {
  await mkdir(dirname(logPath), { recursive: true });
  await appendFile(logPath, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}
