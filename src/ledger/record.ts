/**
 * The ledger's part of an apply of a purge policy (src/commands/run.ts): whether this run writes
 * the ledger, and the write itself, in the run's transaction just before COMMIT.
 *
 * The ledger is kept per database, not per policy or per run: a database keeps one once
 * purgekit.ledger exists in it (`purgekit ledger init`, or the first apply with
 * PURGEKIT_LEDGER_KEY set), and from then on every apply of a purge policy against it writes
 * the ledger or refuses to run (a missing key is a usage error before anything is deleted). A
 * flag or a policy key could be forgotten on one run, and that erasure would silently not be
 * replayed after a restore.
 */
import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import { qualified } from '../core/names.js';
import type { Policy } from '../policy.js';
import { SUBJECT } from '../plan/sql.js';
import { quoteIdent } from '../sql/quote.js';
import { LEDGER_KEY_ENV, subjectDigest, type LedgerKey } from './key.js';
import { appendEntries, createLedger, ledgerExists } from './table.js';

export interface RunLedger {
  readonly subjectTable: string;
  readonly keyColumns: readonly string[];
  readonly keyId: string;
  /** The digests of the subjects the run purges (read once from the subject table of the transaction). */
  digests(tx: postgres.TransactionSql): Promise<readonly string[]>;
  /** In the run's transaction, just before COMMIT: one 'erased' row per subject. */
  write(tx: postgres.TransactionSql): Promise<void>;
}

/**
 * undefined when the database keeps no ledger and no key is set; a usage error when it keeps
 * one and the key is missing. Creates purgekit.ledger when the key is set and the table is not
 * there yet (said on stderr).
 */
export async function runLedger(sql: postgres.Sql, policy: Policy, planSha256: string, runId: string, key: LedgerKey | undefined, say: (line: string) => void): Promise<RunLedger | undefined> {
  if (policy.kind !== 'purge' || !policy.subject) return undefined;
  const exists = await ledgerExists(sql);
  if (!key) {
    if (!exists) return undefined;
    throw new UsageError(`this database keeps an erasure ledger (purgekit.ledger): set ${LEDGER_KEY_ENV} to its key, so that this purge is recorded and replayed after a restore; nothing was run`);
  }
  if (!exists) {
    await createLedger(sql);
    say(`ledger: created purgekit.ledger (${LEDGER_KEY_ENV} is set): from now on every purge of this database is recorded there (docs/LEDGER.md)`);
  }
  const subject = policy.subject;
  const subjectTable = qualified(subject.table);
  const keyColumns = [subject.key];
  let cached: readonly string[] | undefined;
  const digests = async (tx: postgres.TransactionSql) => {
    if (cached) return cached;
    const rows = await tx.unsafe<Record<string, string | null>[]>(`SELECT ${keyText(keyColumns)} FROM ${SUBJECT}`);
    cached = rows.flatMap((r) => {
      const values = keyColumns.map((_, i) => r[`k${i}`]);
      return values.some((v) => v === null || v === undefined) ? [] : [subjectDigest(key, subjectTable, values as string[])];
    });
    return cached;
  };
  return {
    subjectTable,
    keyColumns,
    keyId: key.id,
    digests,
    write: async (tx) => {
      const n = await appendEntries(tx, { entry: 'erased', subjectTable, keyColumns, subjects: await digests(tx), keyId: key.id, policy: policy.name, planSha256, runId });
      say(`ledger: ${n} ${n === 1 ? 'subject' : 'subjects'} written to purgekit.ledger as erased (in the purge's transaction: it commits with it)`);
    },
  };
}

/** The select list of a subject's key columns in text form, as k0, k1, ...: what the ledger digests. */
export function keyText(keyColumns: readonly string[]): string {
  return keyColumns.map((c, i) => `${quoteIdent(c)}::text AS k${i}`).join(', ');
}
