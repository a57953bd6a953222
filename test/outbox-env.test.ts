import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { withOutbox } from './helpers/outbox.js';
import { startApi } from './helpers/sidecars.js';
import { purgekit, tempAuditLog, why } from './run-helpers.js';

/**
 * ${VAR:-default} in an after_commit template (supabase-fresh-start: ${CLERK_API_URL:-https://api.clerk.com}):
 * the default when the variable is unset or empty, the variable when it is set; a ${VAR} without a
 * default is still required. Real PostgreSQL and a real local HTTP server.
 */
async function queue(url: string) {
  const db = await createTestDatabase(withOutbox('supabase'));
  const spec = JSON.stringify({ kind: 'http', method: 'DELETE', url, headers: { Authorization: 'Bearer ${CLERK_SECRET_KEY}' }, ok: [200, 404] });
  await db.sql.unsafe(`INSERT INTO purgekit.outbox (policy, action, kind, spec, captured) VALUES ('test', 1, 'http', $1::text::jsonb, '{"clerk_user_id": "user_2x"}')`, [spec]);
  return db;
}

describe('after_commit: ${VAR:-default}', () => {
  it('uses the default when the variable is unset or empty, the variable when set', async () => {
    const fallback = await startApi();
    const other = await startApi();
    onTestFinished(() => Promise.all([fallback.stop(), other.stop()]).then(() => {}));
    const url = `\${CLERK_API_URL:-${fallback.url}}/v1/users/{row.clerk_user_id}`;

    const unset = await queue(url);
    const a = await purgekit(['outbox', 'run', '--connection', unset.url, '--audit-log', tempAuditLog()], { env: { CLERK_SECRET_KEY: 'sk_test_x' } });
    expect(a.code, why(a)).toBe(0);
    const empty = await queue(url);
    const b = await purgekit(['outbox', 'run', '--connection', empty.url, '--audit-log', tempAuditLog()], { env: { CLERK_SECRET_KEY: 'sk_test_x', CLERK_API_URL: '' } });
    expect(b.code, why(b)).toBe(0);
    expect(fallback.seen).toEqual([
      { method: 'DELETE', path: '/v1/users/user_2x', authorization: 'Bearer sk_test_x' },
      { method: 'DELETE', path: '/v1/users/user_2x', authorization: 'Bearer sk_test_x' },
    ]);

    const set = await queue(url);
    const c = await purgekit(['outbox', 'run', '--connection', set.url, '--audit-log', tempAuditLog()], { env: { CLERK_SECRET_KEY: 'sk_test_x', CLERK_API_URL: other.url } });
    expect(c.code, why(c)).toBe(0);
    expect(other.seen.map((s) => s.path)).toEqual(['/v1/users/user_2x']);
    expect(fallback.seen).toHaveLength(2);

    // Without a default the variable is required: the job fails (exit 8), and says which.
    const none = await queue(url);
    const d = await purgekit(['outbox', 'run', '--connection', none.url, '--audit-log', tempAuditLog(), '--attempts', '1'], { env: {} });
    expect(d.code, why(d)).toBe(8);
    expect(d.stderr).toMatch(/environment variable CLERK_SECRET_KEY is not set/);
  });

  it('supabase-fresh-start: apply needs CLERK_SECRET_KEY but not CLERK_API_URL', async () => {
    const db = await createTestDatabase(withOutbox('supabase'));
    const r = await purgekit(['apply', 'supabase-fresh-start', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { env: {} });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/reads \$\{CLERK_SECRET_KEY\}, not set in the environment \(nothing was run\)/);
    expect(r.stderr).not.toMatch(/CLERK_API_URL/);
  });
});
