import { qualified } from '../core/names.js';
import type { TableName } from '../policy.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { placeholdersOf, type AfterCommitAction } from './spec.js';

/**
 * purgekit.outbox: one row per side effect, written by the purge's own transaction (so a job
 * exists if and only if the purge committed) and worked off after COMMIT by apply itself, then by
 * `purgekit outbox run`. docs/FORMATS.md describes the table.
 *
 * Personal values: `captured` (the subject's columns) and `params` are what a job needs to run;
 * they stay in the target database only until the job is done, when both are set to NULL (the
 * row keeps its status, attempts, times and the action's templates). Environment values are never
 * stored: `spec` holds the templates as written, ${VAR} and all.
 */
export const OUTBOX = 'purgekit.outbox';

export const OUTBOX_DDL = `CREATE SCHEMA IF NOT EXISTS purgekit;
CREATE TABLE IF NOT EXISTS purgekit.outbox (
  id bigserial PRIMARY KEY,
  xid bigint NOT NULL DEFAULT txid_current(),
  policy text NOT NULL,
  action integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('http', 'redis', 'files', 'command')),
  spec jsonb NOT NULL,
  captured jsonb,
  params jsonb,
  status text NOT NULL DEFAULT 'pending' CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'running', 'done', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz,
  claimed_by text,
  claimed_at timestamptz,
  lease_until timestamptz
);
-- An outbox made before the lease (running, claimed_by, claimed_at, lease_until): brought up to date.
ALTER TABLE purgekit.outbox ADD COLUMN IF NOT EXISTS claimed_by text, ADD COLUMN IF NOT EXISTS claimed_at timestamptz, ADD COLUMN IF NOT EXISTS lease_until timestamptz;
ALTER TABLE purgekit.outbox DROP CONSTRAINT IF EXISTS outbox_status_check;
ALTER TABLE purgekit.outbox ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'running', 'done', 'failed'));
CREATE INDEX IF NOT EXISTS outbox_open ON purgekit.outbox (id) WHERE status <> 'done';
COMMENT ON TABLE purgekit.outbox IS 'purgekit after_commit jobs (docs/FORMATS.md); captured and params are NULL once a job is done'`;

/** Where the values of an outbox node's jobs come from. */
export interface OutboxSource {
  /** purge: the subject rows (keys in pg_temp.purgekit_subject). */
  readonly subject?: { readonly table: TableName; readonly key: string; readonly capture: readonly string[] };
  readonly params: string;
}

/**
 * The INSERT of a plan's jobs: one per subject row and action (a purge), per for_each row, or one
 * per run. It runs before the first delete, so the captured rows are still there; params are read
 * from the parameter block (only those a template names).
 */
export function outboxInsert(policy: string, actions: readonly AfterCommitAction[], subject: OutboxSource['subject'], paramsTable: string): string {
  const params = [...new Set(actions.flatMap((a) => placeholdersOf(a.spec).filter((p) => p.kind === 'params').map((p) => p.name)))].sort();
  const paramsSql = params.length ? `(SELECT jsonb_build_object(${params.map((p) => `${quoteLiteral(p)}, ${quoteIdent(p)}`).join(', ')}) FROM ${paramsTable})` : 'NULL::jsonb';
  // if: <flag>: the action's rows are queued only when the parameter block says the flag is set.
  const flagged = actions.some((a) => a.flag);
  const on = (a: AfterCommitAction) => (a.flag ? `(SELECT ${quoteIdent(a.flag)} FROM ${paramsTable})` : 'true');
  const row = (a: AfterCommitAction) => `(${a.action}, ${quoteLiteral(a.spec.kind)}, ${quoteLiteral(JSON.stringify(a.spec))}::jsonb${flagged ? `, ${on(a)}` : ''})`;
  const columns = `AS a (action, kind, spec${flagged ? ', queued' : ''})`;
  const captured = (alias: string, columns: readonly string[]) =>
    columns.length ? `jsonb_build_object(${columns.map((c) => `${quoteLiteral(c)}, ${alias}.${quoteIdent(c)}`).join(', ')})` : 'NULL::jsonb';
  const selects: string[] = [];
  const perSubject = actions.filter((a) => !a.forEach && subject);
  if (perSubject.length && subject) {
    selects.push(
      [
        `SELECT ${quoteLiteral(policy)}, a.action, a.kind, a.spec, ${captured('s', subject.capture)}, ${paramsSql}`,
        `FROM ${qualified(subject.table)} AS s`,
        `CROSS JOIN (VALUES ${perSubject.map(row).join(',\n  ')}) ${columns}`,
        `WHERE s.${quoteIdent(subject.key)} IN (TABLE pg_temp.purgekit_subject)${flagged ? ' AND a.queued' : ''}`,
      ].join('\n'),
    );
  }
  for (const a of actions.filter((x) => x.forEach)) {
    const f = a.forEach!;
    selects.push(
      [
        `SELECT ${quoteLiteral(policy)}, ${a.action}, ${quoteLiteral(a.spec.kind)}, ${quoteLiteral(JSON.stringify(a.spec))}::jsonb, ${captured('r', f.capture)}, ${paramsSql}`,
        `FROM ${qualified(f.table)} AS r`,
        `WHERE ${f.capture.map((c) => `r.${quoteIdent(c)} IS NOT NULL`).join(' AND ')}${a.flag ? ` AND ${on(a)}` : ''}`,
      ].join('\n'),
    );
  }
  const once = actions.filter((a) => !a.forEach && !subject);
  if (once.length) {
    selects.push(`SELECT ${quoteLiteral(policy)}, a.action, a.kind, a.spec, NULL::jsonb, ${paramsSql}\nFROM (VALUES ${once.map(row).join(',\n  ')}) ${columns}${flagged ? '\nWHERE a.queued' : ''}`);
  }
  const insert = `INSERT INTO ${OUTBOX} (policy, action, kind, spec, captured, params)\n${selects.join('\nUNION ALL\n')}`;
  if (!actions.every((a) => a.flag)) return insert;
  // Every action behind a flag: with none set, the INSERT is not even planned, so a database
  // without purgekit.outbox (and a pasted script there) runs the policy as if it had none.
  const any = [...new Set(actions.map((a) => quoteIdent(a.flag!)))].join(' OR ');
  return `DO $purgekit_outbox$\nBEGIN\n  IF (SELECT ${any} FROM ${paramsTable}) THEN\n${insert.replace(/^/gm, '    ')};\n  END IF;\nEND\n$purgekit_outbox$`;
}
