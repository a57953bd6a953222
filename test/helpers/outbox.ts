/** Test fixtures for policies with after_commit (src/outbox): the outbox table, and snapshots without it. */
import { loadFixture, snapshot, type TestDb } from '../harness/db.js';
import { OUTBOX_DDL } from '../../src/outbox/sql.js';

/** A fixture's SQL followed by purgekit outbox init's DDL. */
export function withOutbox(fixture: string): string {
  return `${loadFixture(fixture)};\n${OUTBOX_DDL}`;
}

/**
 * The user data, without purgekit's own schema: the outbox's jobs are test/outbox.test.ts's
 * business, and its id sequence advances even when a run rolls back (sequences are not transactional).
 */
export async function userSnapshot(sql: TestDb['sql']): Promise<Record<string, string>> {
  return Object.fromEntries(Object.entries(await snapshot(sql)).filter(([k]) => !k.startsWith('purgekit.') && !k.startsWith('seq:purgekit.')));
}
