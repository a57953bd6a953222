/**
 * The erasure ledger's key and digests (docs/LEDGER.md). A subject is stored as
 * HMAC-SHA256(PURGEKIT_LEDGER_KEY, input), never in clear, where input is the subject table and
 * the key values as length-prefixed strings (netstrings: `<byte length>:<bytes>,`), so that
 * ('ab', 'c') and ('a', 'bc') differ. The values are in their text form (`key::text`), which is
 * how PostgreSQL prints and compares the key, so the digest written at the purge and the one
 * computed by `ledger check` from the live table agree for every key type.
 */
import { createHmac } from 'node:crypto';
import { UsageError } from '../core/errors.js';

export const LEDGER_KEY_ENV = 'PURGEKIT_LEDGER_KEY';
export const MIN_KEY_LENGTH = 32;

export interface LedgerKey {
  readonly secret: Buffer;
  /** A fingerprint of the key (not the key): which key a ledger row was written under. */
  readonly id: string;
}

/** The key from the environment; undefined when it is not set; a usage error when it is too short. */
export function ledgerKeyFrom(env: NodeJS.ProcessEnv): LedgerKey | undefined {
  const text = env[LEDGER_KEY_ENV];
  if (text === undefined || text === '') return undefined;
  if (text.length < MIN_KEY_LENGTH) {
    throw new UsageError(`${LEDGER_KEY_ENV} is ${text.length} characters long: the erasure ledger's key must have at least ${MIN_KEY_LENGTH} (for example: openssl rand -hex 32); nothing was run`);
  }
  const secret = Buffer.from(text, 'utf8');
  return { secret, id: createHmac('sha256', secret).update('purgekit-ledger key id').digest('hex').slice(0, 16) };
}

/** The key, or a usage error saying why the command needs it. */
export function requireLedgerKey(env: NodeJS.ProcessEnv, why: string): LedgerKey {
  const key = ledgerKeyFrom(env);
  if (!key) throw new UsageError(`${why}: set ${LEDGER_KEY_ENV} to the erasure ledger's key (at least ${MIN_KEY_LENGTH} characters, the same for every run against this database); nothing was run`);
  return key;
}

function netstring(text: string): string {
  return `${Buffer.byteLength(text, 'utf8')}:${text},`;
}

/** The ledger's digest of one subject: its table (as SQL spells it) and its key values in text form. */
export function subjectDigest(key: LedgerKey, table: string, values: readonly string[]): string {
  const input = netstring('purgekit-ledger/1') + netstring(table) + values.map(netstring).join('');
  return `hmac-sha256:${createHmac('sha256', key.secret).update(input, 'utf8').digest('hex')}`;
}
