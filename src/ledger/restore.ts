/**
 * `purgekit restore` of a backup whose purge was recorded in the erasure ledger: an explicit
 * undo. In the restore's own transaction, one 'restored' row per subject of the backup (the
 * digests its manifest carries, so no key is needed), so that `ledger check` and `ledger replay`
 * leave those subjects alone until they are erased again.
 */
import type postgres from 'postgres';
import { RestoreRefused } from '../core/errors.js';
import { MANIFEST, type Manifest } from '../run/backup.js';
import { appendEntries, LEDGER_DDL, ledgerExists } from './table.js';

export async function recordRestore(tx: postgres.TransactionSql, manifest: Manifest, say: (line: string) => void): Promise<number> {
  const ledger = manifest.ledger;
  if (!ledger) return 0;
  // The manifest is not signed: what goes into the ledger must have the shape the apply wrote.
  const text = (v: unknown) => typeof v === 'string' && v !== '';
  if (!text(ledger.subjectTable) || !text(ledger.keyId) || !Array.isArray(ledger.keyColumns) || !ledger.keyColumns.every(text) || !Array.isArray(ledger.subjects) || !ledger.subjects.every((d) => typeof d === 'string' && /^hmac-sha256:[0-9a-f]{64}$/.test(d))) {
    throw new RestoreRefused(`${MANIFEST}: "ledger" is not what apply writes ({ subjectTable, keyColumns, keyId, subjects: ["hmac-sha256:..."] }): altered?`);
  }
  if (ledger.subjects.length === 0) return 0;
  if (!(await ledgerExists(tx))) {
    // The purge was recorded in a ledger this database no longer has (a dump from before it?): the undo is kept all the same.
    await tx.unsafe(LEDGER_DDL).simple();
    say('ledger: created purgekit.ledger to record the un-erasure (the backup comes from a purge that was recorded in a ledger)');
  }
  const n = await appendEntries(tx, {
    entry: 'restored',
    subjectTable: ledger.subjectTable,
    keyColumns: ledger.keyColumns,
    subjects: ledger.subjects,
    keyId: ledger.keyId,
    policy: manifest.policy,
    planSha256: manifest.planSha256,
    runId: null,
  });
  say(`ledger: ${n} ${n === 1 ? 'subject' : 'subjects'} recorded as restored (un-erased): ledger check and replay leave ${n === 1 ? 'it' : 'them'} alone`);
  return n;
}
