/**
 * Data generator for the seed-000 (Nexus) schema: bench/schema.sql, then about 70 rows per user
 * spread over 13 tables (about 7.8M rows for the default 100k users), all generated server-side
 * with INSERT ... SELECT generate_series, then the foreign-key indexes, VACUUM ANALYZE and a
 * CHECKPOINT so that the timed runs do not pay for the load.
 *
 * Every regular user owns the same amount of data, so runs on different users are comparable:
 *
 *   per user   table                      rows (U = users)   spread
 *   1          user_profiles              U (+H)             1 in 1000 is an admin
 *   0.2        companies                  U/5                owned by every fifth user (n % 5 = 1)
 *   1          company_members            U                  5 members per company
 *   5          ai_conversations           5U (+10H)          conversation c -> user (c-1) % U + 1
 *   40         ai_messages                40U (+8U)          8 per conversation
 *   2          ai_message_attachments     2U
 *   3, 2, 2    ai_memories, oauth_tokens, user_integrations
 *   10         business_health_snapshots  10U (+1000H)
 *   1, 1, 1.5  onboarding_progress, user_preferences, user_organizations
 *
 * Rows of one user are interleaved with everybody else's (user n's rows are n, n+U, n+2U, ...),
 * as rows inserted over time are: a purge touches about one heap page per row it removes.
 *
 * H heavy users (numbers U+1 .. U+H) have 10 conversations each and share every 6th message of
 * the table (8U messages: 32 000 each for U = 100k, H = 25), also interleaved, plus 1000
 * snapshots each: purges where the work of the DELETEs, not fixed costs, dominates.
 *
 * Standalone: npx tsx bench/generate.ts postgres://... [users] [heavy]   (an empty database)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';

const HERE = new URL('.', import.meta.url).pathname;
const MARKER = '-- @after-load';

/** 'auth|u0000042' for user number 42 (SQL expression over an integer expression). */
export const userIdSql = (n: string) => `'auth|u' || lpad((${n})::text, 7, '0')`;
export const userId = (n: number) => `auth|u${String(n).padStart(7, '0')}`;

export interface Generated {
  readonly users: number;
  /** User numbers of the heavy users (after the regular ones). */
  readonly heavy: readonly number[];
  readonly rows: Readonly<Record<string, number>>;
  readonly totalRows: number;
  readonly seconds: number;
}

export async function generate(url: string, users: number, heavy: number, log: (line: string) => void = () => {}): Promise<Generated> {
  if (!Number.isInteger(users) || users < 100 || users % 10 !== 0) throw new Error(`users must be a multiple of 10, at least 100 (got ${users})`);
  if (!Number.isInteger(heavy) || heavy < 1) throw new Error(`heavy users: at least 1 (got ${heavy})`);
  const started = performance.now();
  const U = users;
  const H = heavy;
  const uid = userIdSql;
  const schema = readFileSync(join(HERE, 'schema.sql'), 'utf8');
  const at = schema.indexOf(MARKER);
  if (at < 0) throw new Error(`bench/schema.sql has no "${MARKER}" line`);
  const [tables, indexes] = [schema.slice(0, at), schema.slice(at)];

  // Two connections, two loads in parallel (2 cores here). FK triggers are off during the load
  // (session_replication_role = replica, superuser only): the data is consistent by
  // construction, and a count of orphans below proves it.
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  try {
    await sql.unsafe(tables);
    const load = async (statements: string[]) =>
      sql.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL session_replication_role = replica; SET LOCAL synchronous_commit = off`);
        for (const s of statements) {
          const t = performance.now();
          await tx.unsafe(s);
          log(`  ${s.match(/INSERT INTO (\w+)/)?.[1]}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
        }
      });
    const series = (n: number | string) => `FROM generate_series(1, ${n}) AS g(i)`;
    const messages = [
      // The big one gets a connection of its own. Every 6th message belongs to a heavy user's
      // conversation; the other 5 go round the regular conversations (8 each, exactly).
      `INSERT INTO ai_messages (id, conversation_id, body)
       SELECT i, CASE WHEN i % 6 = 0 THEN ${5 * U} + (i / 6 - 1) % ${10 * H} + 1
                      ELSE (i - i / 6 - 1) % ${5 * U} + 1 END,
              'message ' || i || ': ' || md5(i::text) ${series(48 * U)}`,
    ];
    const rest = [
      `INSERT INTO user_profiles (user_id, email, business_email, personal_email, role, created_at)
       SELECT ${uid('i')}, 'user' || i || '@example.com',
              CASE WHEN i % 3 = 0 THEN 'User' || i || '@Corp.example' END,
              CASE WHEN i % 5 = 0 THEN 'user' || i || '@home.example' END,
              CASE WHEN i % 1000 = 0 AND i <= ${U} THEN 'admin' ELSE 'user' END,
              timestamptz '2024-01-01' + i * interval '1 minute'
       ${series(U + H)}`,
      `INSERT INTO companies (id, name, owner_id) SELECT i, 'Company ' || i, ${uid('(i - 1) * 5 + 1')} ${series(U / 5)}`,
      `INSERT INTO company_members (company_id, user_id)
       SELECT (i - 1) % ${U / 5} + 1, ${uid(`((i - 1) * 7919) % ${U} + 1`)} ${series(U)} ON CONFLICT DO NOTHING`,
      `INSERT INTO ai_conversations (id, user_id, title)
       SELECT i, ${uid(`CASE WHEN i <= ${5 * U} THEN (i - 1) % ${U} + 1 ELSE ${U} + (i - ${5 * U} - 1) / 10 + 1 END`)}, 'conversation ' || i
       ${series(5 * U + 10 * H)}`,
      `INSERT INTO ai_message_attachments (id, conversation_id, filename, size_bytes)
       SELECT i, (i - 1) % ${5 * U} + 1, 'file-' || i || '.pdf', 1000 + i % 50000 ${series(2 * U)}`,
      `INSERT INTO ai_memories (id, user_id, note) SELECT i, ${uid(`(i - 1) % ${U} + 1`)}, 'remembers ' || md5(i::text) ${series(3 * U)}`,
      `INSERT INTO oauth_tokens (id, user_id, provider)
       SELECT i, ${uid(`(i - 1) % ${U} + 1`)}, (ARRAY['google', 'github', 'microsoft'])[i % 3 + 1] ${series(2 * U)}`,
      `INSERT INTO user_integrations (id, user_id, kind)
       SELECT i, ${uid(`(i - 1) % ${U} + 1`)}, (ARRAY['slack', 'hubspot', 'stripe', 'quickbooks'])[i % 4 + 1] ${series(2 * U)}`,
      `INSERT INTO business_health_snapshots (id, user_id, score)
       SELECT i, ${uid(`CASE WHEN i <= ${10 * U} THEN (i - 1) % ${U} + 1 ELSE ${U} + (i - ${10 * U} - 1) % ${H} + 1 END`)}, i % 100
       ${series(10 * U + 1000 * H)}`,
      `INSERT INTO onboarding_progress (user_id, step) SELECT ${uid('i')}, i % 7 ${series(U)}`,
      `INSERT INTO user_preferences (user_id, theme) SELECT ${uid('i')}, CASE WHEN i % 2 = 0 THEN 'dark' ELSE 'light' END ${series(U)}`,
      `INSERT INTO user_organizations (user_id, org) SELECT ${uid(`(i - 1) % ${U} + 1`)}, 'org-' || i % 977 ${series((3 * U) / 2)}`,
    ];
    await Promise.all([load(messages), load(rest)]);

    // Serial columns continue after the generated ids.
    for (const t of ['companies', 'ai_conversations', 'ai_messages', 'ai_message_attachments', 'ai_memories', 'oauth_tokens', 'user_integrations', 'business_health_snapshots']) {
      await sql.unsafe(`SELECT setval(pg_get_serial_sequence('${t}', 'id'), (SELECT max(id) FROM ${t}))`);
    }

    // Indexes, two at a time, biggest first.
    const t = performance.now();
    const creates = indexes.split(';').map((s) => s.replace(/^\s*--.*$/gm, '').trim()).filter(Boolean);
    creates.sort((a, b) => Number(b.includes('ai_messages')) - Number(a.includes('ai_messages')));
    const queue = [...creates];
    const worker = async () => {
      for (let s = queue.shift(); s; s = queue.shift()) await sql.unsafe(`SET maintenance_work_mem = '512MB'; ${s}`);
    };
    await Promise.all([worker(), worker()]);
    log(`  indexes: ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // The load skipped the FK triggers: prove there is no orphan instead.
    const orphans = await sql.unsafe(`
      SELECT (SELECT count(*) FROM ai_messages m WHERE NOT EXISTS (SELECT FROM ai_conversations c WHERE c.id = m.conversation_id))
           + (SELECT count(*) FROM ai_message_attachments a WHERE NOT EXISTS (SELECT FROM ai_conversations c WHERE c.id = a.conversation_id))
           + (SELECT count(*) FROM company_members m WHERE NOT EXISTS (SELECT FROM companies c WHERE c.id = m.company_id))
           + (SELECT count(*) FROM (
                SELECT user_id FROM ai_conversations UNION ALL SELECT user_id FROM ai_memories
                UNION ALL SELECT user_id FROM oauth_tokens UNION ALL SELECT user_id FROM user_integrations
                UNION ALL SELECT user_id FROM business_health_snapshots UNION ALL SELECT user_id FROM onboarding_progress
                UNION ALL SELECT user_id FROM user_preferences UNION ALL SELECT user_id FROM user_organizations
                UNION ALL SELECT user_id FROM company_members UNION ALL SELECT owner_id FROM companies) r
              WHERE NOT EXISTS (SELECT FROM user_profiles p WHERE p.user_id = r.user_id)) AS n`);
    if (Number(orphans[0]!['n']) !== 0) throw new Error(`generated data has ${orphans[0]!['n']} orphan rows`);

    const t2 = performance.now();
    await Promise.all([sql.unsafe('VACUUM (ANALYZE) ai_messages'), sql.unsafe('VACUUM (ANALYZE)')]);
    await sql.unsafe('CHECKPOINT');
    log(`  vacuum analyze + checkpoint: ${((performance.now() - t2) / 1000).toFixed(1)} s`);

    const names = await sql<{ relname: string }[]>`SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'`;
    const counts = await sql.unsafe<{ relname: string; n: string }[]>(
      names.map((r) => `SELECT '${r.relname}' AS relname, count(*) AS n FROM ${r.relname}`).join(' UNION ALL ') + ' ORDER BY n DESC');
    const rows = Object.fromEntries(counts.map((r) => [r.relname, Number(r.n)]));
    const totalRows = Object.values(rows).reduce((a, b) => a + b, 0);
    return { users, heavy: Array.from({ length: H }, (_, i) => U + i + 1), rows, totalRows, seconds: (performance.now() - started) / 1000 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (process.argv[1] && new URL(`file://${process.argv[1]}`).pathname === new URL(import.meta.url).pathname) {
  const [url, users = '100000', heavy = '25'] = process.argv.slice(2);
  if (!url) {
    process.stderr.write('usage: npx tsx bench/generate.ts <postgres url of an empty database> [users] [heavy users]\n');
    process.exit(2);
  }
  const g = await generate(url, Number(users), Number(heavy), (line) => process.stderr.write(`${line}\n`));
  process.stderr.write(`${g.totalRows} rows for ${g.users} users in ${g.seconds.toFixed(1)} s\n`);
}
