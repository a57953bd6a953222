/**
 * purgekit.ledger in the target database: one row per subject a committed purge erased
 * ('erased', written in the purge's own transaction, just before COMMIT), and one per subject
 * `purgekit restore` brought back ('restored', the un-erasure that replay respects). Rows hold
 * digests (key.ts), never key values. docs/LEDGER.md and docs/FORMATS.md describe the table.
 */
import type postgres from 'postgres';

export const LEDGER = 'purgekit.ledger';

export const LEDGER_DDL = `CREATE SCHEMA IF NOT EXISTS purgekit;
CREATE TABLE IF NOT EXISTS purgekit.ledger (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  entry text NOT NULL CHECK (entry IN ('erased', 'restored')),
  subject_table text NOT NULL,
  key_columns text[] NOT NULL,
  subject text NOT NULL CHECK (subject ~ '^hmac-sha256:[0-9a-f]{64}$'),
  key_id text NOT NULL,
  policy text NOT NULL,
  plan_sha256 text NOT NULL,
  run_id text,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ledger_subject ON purgekit.ledger (subject_table, key_id, subject, recorded_at);
COMMENT ON TABLE purgekit.ledger IS 'purgekit erasure ledger (docs/LEDGER.md): HMACs of erased and restored subjects, never their keys in clear'`;

type Sql = postgres.Sql | postgres.TransactionSql;

export interface LedgerEntries {
  readonly entry: 'erased' | 'restored';
  /** The subject table as SQL spells it (schema.name). */
  readonly subjectTable: string;
  readonly keyColumns: readonly string[];
  readonly subjects: readonly string[];
  readonly keyId: string;
  readonly policy: string;
  readonly planSha256: string;
  /** The audit log's run id of the apply (erased), or null. */
  readonly runId: string | null;
}

export async function ledgerExists(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ yes: boolean }[]>`SELECT to_regclass('purgekit.ledger') IS NOT NULL AS yes`;
  return Boolean(row?.yes);
}

export async function createLedger(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(LEDGER_DDL).simple();
}

/** One row per subject, in one statement. */
export async function appendEntries(sql: Sql, e: LedgerEntries): Promise<number> {
  if (e.subjects.length === 0) return 0;
  const rows = await sql`
    INSERT INTO purgekit.ledger (entry, subject_table, key_columns, subject, key_id, policy, plan_sha256, run_id)
    SELECT ${e.entry}, ${e.subjectTable}, ${e.keyColumns as string[]}::text[], s, ${e.keyId}, ${e.policy}, ${e.planSha256}, ${e.runId}
    FROM unnest(${e.subjects as string[]}::text[]) AS s`;
  return rows.count;
}

export interface ErasedSubject {
  readonly subject: string;
  readonly policy: string;
  readonly erasedAt: Date;
}

/**
 * The subjects of a table whose latest ledger entry under this key is an erasure (not followed
 * by a restore), erased at or after `since` when given.
 */
export async function erasedSubjects(sql: Sql, subjectTable: string, keyId: string, since?: Date): Promise<Map<string, ErasedSubject>> {
  const rows = await sql<{ subject: string; policy: string; recorded_at: Date }[]>`
    SELECT subject, policy, recorded_at FROM (
      SELECT DISTINCT ON (subject) subject, entry, policy, recorded_at
      FROM purgekit.ledger
      WHERE subject_table = ${subjectTable} AND key_id = ${keyId}
      ORDER BY subject, recorded_at DESC, (entry = 'erased') DESC
    ) latest
    WHERE entry = 'erased' AND (${since ?? null}::timestamptz IS NULL OR recorded_at >= ${since ?? null}::timestamptz)`;
  return new Map(rows.map((r) => [r.subject, { subject: r.subject, policy: r.policy, erasedAt: r.recorded_at }]));
}

/** Rows of the table written under other keys: `ledger check` cannot compare them with this key. */
export async function otherKeys(sql: Sql, subjectTable: string, keyId: string): Promise<{ keyId: string; rows: number }[]> {
  const rows = await sql<{ key_id: string; n: number }[]>`
    SELECT key_id, count(*)::int AS n FROM purgekit.ledger WHERE subject_table = ${subjectTable} AND key_id <> ${keyId} GROUP BY 1 ORDER BY 1`;
  return rows.map((r) => ({ keyId: r.key_id, rows: r.n }));
}
