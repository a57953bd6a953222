/**
 * Per-test database helpers on top of the server chosen by globalSetup.ts.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { inject, onTestFinished, TestRunner } from 'vitest';

export interface TestDb {
  url: string;
  name: string;
  sql: postgres.Sql;
}

export type SimpleQueryResult =
  | { ok: true; results: Record<string, unknown>[] }
  | { ok: false; error: { code?: string; message: string } };

const quiet = { onnotice: () => {} };

/** The admin URL with its database swapped for `dbName` (keeps host, credentials, query params). */
function urlFor(dbName: string): string {
  const u = new URL(inject('pgAdminUrl'));
  u.pathname = `/${dbName}`;
  return u.toString();
}

async function withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  // Short-lived: an idle pooled connection would outlive the worker's tests for no gain.
  const admin = postgres(inject('pgAdminUrl'), { max: 1, ...quiet });
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/**
 * Creates an empty database `pk_<hex>` and connects to it. Inside a test the
 * database is dropped automatically when the test finishes; elsewhere (e.g.
 * beforeAll) the caller must call dropTestDatabase.
 */
export async function createTestDatabase(fixtureSql?: string): Promise<TestDb> {
  const name = `pk_${randomBytes(8).toString('hex')}`;
  await withAdmin((admin) => admin`CREATE DATABASE ${admin(name)}`);
  const url = urlFor(name);
  const db: TestDb = { url, name, sql: postgres(url, { max: 2, ...quiet }) };
  // Register cleanup before loading the fixture, so a broken fixture still gets dropped.
  if (TestRunner.getCurrentTest()) onTestFinished(() => dropTestDatabase(db));
  if (fixtureSql !== undefined) await db.sql.unsafe(fixtureSql); // no params => simple protocol, multi-statement OK
  return db;
}

export async function dropTestDatabase(db: TestDb): Promise<void> {
  await db.sql.end({ timeout: 5 });
  // FORCE also kills connections a test leaked (e.g. a runSimpleQuery client).
  await withAdmin((admin) => admin`DROP DATABASE IF EXISTS ${admin(db.name)} WITH (FORCE)`);
}

/** Reads test/fixtures/<name>.sql, resolved relative to this file rather than cwd. */
export function loadFixture(name: string): string {
  return readFileSync(new URL(`../fixtures/${name}.sql`, import.meta.url), 'utf8');
}

/**
 * A fingerprint of all user data: `"schema.table"` -> md5 of its rows in a
 * deterministic order, and `"seq:schema.name"` -> `"last_value,is_called"`.
 * Two equal snapshots mean no committed row or sequence state differs.
 * Partitioned parents (relkind 'p') are skipped: their rows are counted in the leaves ('r').
 */
export async function snapshot(sql: postgres.Sql): Promise<Record<string, string>> {
  const rels = await sql<{ key: string; ident: string; kind: 'r' | 'S' }[]>`
    SELECT n.nspname || '.' || c.relname AS key,
           format('%I.%I', n.nspname, c.relname) AS ident,
           c.relkind AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\_temp\_%'
      AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
    ORDER BY 1`;
  const out: Record<string, string> = {};
  for (const { key, ident, kind } of rels) {
    if (kind === 'S') {
      const [s] = await sql.unsafe<{ v: string }[]>(
        `SELECT last_value::text || ',' || is_called::text AS v FROM ${ident}`,
      );
      out[`seq:${key}`] = s!.v;
    } else {
      // `t.*::text` is the whole-row text even if the table has a column named `t`
      // (a bare `t` would then mean that column).
      const [r] = await sql.unsafe<{ h: string }[]>(
        `SELECT md5(coalesce(string_agg(t.*::text, E'\\n' ORDER BY t.*::text), '')) AS h FROM ${ident} t`,
      );
      out[key] = r!.h;
    }
  }
  return out;
}

/** Exact row counts; names are unquoted `table` or `schema.table` and are returned as given. */
export async function rowCounts(sql: postgres.Sql, tables: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) {
    // sql(identifier) quotes each dot-separated part: 'public.User' -> "public"."User".
    const [r] = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM ${sql(t)}`;
    out[t] = Number(r!.n);
  }
  return out;
}

/**
 * Sends `text` as ONE simple-protocol Query message, the way a web SQL editor
 * does: the script's own BEGIN/COMMIT control the transaction, and on error the
 * server skips the rest of the text.
 *
 * Why max: 1: `postgres` rejects a BEGIN command with UNSAFE_TRANSACTION unless
 * the pool has exactly one connection (or the connection is reserved), because
 * with a pool the next query could land on another connection outside the
 * transaction (src/connection.js, CommandComplete). `unsafe(text)` with no
 * parameters sets `simple: true` (src/index.js), i.e. simple protocol.
 *
 * The client is always ended: after a failure inside an explicit BEGIN the
 * session is left in an aborted transaction, and closing it rolls that back.
 */
export async function runSimpleQuery(url: string, text: string): Promise<SimpleQueryResult> {
  const client = postgres(url, { max: 1, ...quiet });
  try {
    const res: unknown = await client.unsafe(text);
    return { ok: true, results: lastRowSet(res) };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    return {
      ok: false,
      error: {
        code: typeof e.code === 'string' ? e.code : undefined,
        message: typeof e.message === 'string' ? e.message : String(err),
      },
    };
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * Picks the rows of the last row-returning statement out of what `postgres`
 * resolves for a simple query. Its shape (src/connection.js):
 *  - It starts with one Result; commands without rows (BEGIN, DELETE, COMMIT...)
 *    only overwrite its `command`/`count`. A new Result is pushed only when a
 *    RowDescription arrives and the current one already completed a command.
 *  - So if at most one statement returned rows (and nothing ran before it), the
 *    value is a single Result: an array of row objects (empty if no statement
 *    returned rows).
 *  - Otherwise it is an array of Results whose LAST element holds the rows of
 *    the last row-returning statement (the first element may be an empty
 *    placeholder for leading commands such as BEGIN).
 * Rows are plain objects, so "first element is an array" tells the two apart.
 */
function lastRowSet(res: unknown): Record<string, unknown>[] {
  if (!Array.isArray(res)) return [];
  const nested = res.length > 0 && Array.isArray(res[0]);
  const rows: unknown = nested ? res[res.length - 1] : res;
  return Array.isArray(rows) ? [...(rows as Record<string, unknown>[])] : [];
}

export function hasPsql(): boolean {
  return spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Runs `psql -X -v ON_ERROR_STOP=1 -d <url> -f <file>`. The password goes via
 * PGPASSWORD so it is not visible in the process list. Exit status 3 means an
 * error stopped the script; 1/2 are psql/connection failures.
 */
export function runPsql(url: string, file: string): { status: number; stdout: string; stderr: string } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: '10' };
  if (password) env.PGPASSWORD = password;
  const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', u.toString(), '-f', file], {
    env,
    encoding: 'utf8',
  });
  return {
    // null status means psql was killed or could not be spawned.
    status: r.status ?? 1,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? `\n${r.error.message}` : ''),
  };
}
