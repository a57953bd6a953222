import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase, hasPsql, loadFixture, runPsql } from './harness/db.js';
import { withOutbox } from './helpers/outbox.js';
import { rowsOf } from './helpers/nexus.js';
import { renderedScript, tempFile } from './helpers/scripts.js';
import { startApi } from './helpers/sidecars.js';
import { purgekit, tempAuditLog, validJson, why } from './run-helpers.js';

/**
 * Seed 000's Authentik side effect in the shipped nexus-purge-user (issue 13): an after_commit
 * http DELETE of the Authentik user behind `if: delete_authentik_user` (off by default), against
 * a real local HTTP server; without the flag the policy needs no outbox, in the runner and in a
 * pasted script.
 */
const TOKEN = 'ak_test_0123456789';

describe('nexus-purge-user: the Authentik user after COMMIT', () => {
  it('--delete-authentik-user: DELETE /api/v3/core/users/<sub>/ with the API token, once, after COMMIT', async () => {
    const db = await createTestDatabase(withOutbox('nexus'));
    const api = await startApi();
    onTestFinished(() => api.stop());
    api.answer = (_req, res) => void res.writeHead(204).end();
    const env = { AUTHENTIK_URL: api.url, AUTHENTIK_TOKEN: TOKEN };
    const plan = await purgekit(['plan', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--delete-authentik-user', '--connection', db.url], { env });
    expect(plan.code, why(plan)).toBe(0);
    expect(plan.stderr).toContain('1. http DELETE ${AUTHENTIK_URL}/api/v3/core/users/{subject.user_id}/ (done on 204, 404) for each subject');
    expect(api.seen).toEqual([]);

    const r = await purgekit(['apply', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--delete-authentik-user', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()], { env });
    expect(r.code, why(r)).toBe(0);
    const json = validJson(r) as unknown as { sideEffects: { queued: number; jobs: { kind: string; status: string }[] } };
    expect(json.sideEffects.jobs.map((j) => [j.kind, j.status])).toEqual([['http', 'done']]);
    expect(api.seen).toEqual([{ method: 'DELETE', path: '/api/v3/core/users/auth%7Calice/', authorization: `Bearer ${TOKEN}` }]);
    expect(await rowsOf(db, 'auth|alice')).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);

    // With the flag, the token must be set before anything is deleted.
    const missing = await purgekit(['apply', 'nexus-purge-user', '--email', 'bob@example.com', '--delete-authentik-user', '--confirm', db.name, '--connection', db.url, '--audit-log', tempAuditLog()], { env: { AUTHENTIK_URL: api.url } });
    expect(missing.code, why(missing)).toBe(2);
    expect(missing.stderr).toMatch(/reads \$\{AUTHENTIK_TOKEN\}, not set in the environment \(nothing was run\)/);
    expect(await rowsOf(db, 'auth|bob')).toBeGreaterThan(0);
  });

  it('without the flag: no job, no outbox needed (runner and pasted script), no side effects in --json', async () => {
    const db = await createTestDatabase(loadFixture('nexus'));
    const r = await purgekit(['apply', 'nexus-purge-user', '--email', 'alice@example.com', '--delete-owned-companies', '--confirm', db.name, '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(0);
    expect(validJson(r)).not.toHaveProperty('sideEffects');
    expect(await rowsOf(db, 'auth|alice')).toBe(0);
    if (hasPsql()) {
      const script = tempFile(await renderedScript('nexus-purge-user', { email: 'bob@example.com', delete_owned_companies: true }));
      const psql = runPsql(db.url, script);
      expect(psql.status, psql.stderr).toBe(0);
      expect(await rowsOf(db, 'auth|bob')).toBe(0);
    }
  });
});
