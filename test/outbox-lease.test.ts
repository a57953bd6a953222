import { describe, expect, it, onTestFinished } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { withOutbox } from './helpers/outbox.js';
import { startApi } from './helpers/sidecars.js';
import { purgekit, tempAuditLog, why, type CliResult } from './run-helpers.js';

/**
 * The outbox worker's lease (src/outbox/worker.ts): a slow HTTP job runs with no transaction
 * open, its worker renews the lease while it waits, and a second `outbox run` started meanwhile
 * leaves the job alone, even after the first lease would have run out without renewal.
 */
describe('outbox run: a slow job under a renewed lease', () => {
  it('a second worker started while the first waits on a slow answer does not run the job', async () => {
    const db = await createTestDatabase(withOutbox('vedfolnir'));
    const api = await startApi();
    onTestFinished(() => api.stop());
    const spec = JSON.stringify({ kind: 'http', method: 'DELETE', url: '${API_URL}/v1/users/{subject.id}', headers: {}, ok: [200, 404] });
    await db.sql.unsafe(`INSERT INTO purgekit.outbox (policy, action, kind, spec, captured) VALUES ('test', 1, 'http', $1::text::jsonb, '{"id": 7}')`, [spec]);
    const env = { API_URL: api.url };
    let second: Promise<{ r: CliResult; open: number; claimedBy: string | null }> | undefined;
    // The answer is held for longer than one lease of 2 s, then until a second worker has come
    // and gone: the first worker keeps the job only by renewing its lease.
    api.answer = (_req, res) => {
      second = (async () => {
        const [open] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`;
        // Past the first lease: without renewal it would have expired by now.
        await new Promise((done) => setTimeout(done, 2500));
        const r = await purgekit(['outbox', 'run', '--json', '--connection', db.url, '--audit-log', tempAuditLog()], { env });
        const [job] = await db.sql<{ claimed_by: string | null }[]>`SELECT claimed_by FROM purgekit.outbox`;
        res.writeHead(200).end();
        return { r, open: open!.n, claimedBy: job!.claimed_by };
      })();
    };
    const first = await purgekit(['outbox', 'run', '--json', '--lease-seconds', '2', '--connection', db.url, '--audit-log', tempAuditLog()], { env });
    expect(first.code, why(first)).toBe(0);
    expect((JSON.parse(first.stdout) as { jobs: { status: string }[] }).jobs.map((j) => j.status)).toEqual(['done']);
    const { r, open, claimedBy } = await second!;
    expect(open).toBe(0); // no transaction open while the job waits on its answer
    expect(claimedBy).toMatch(/^.+:\d+:[0-9a-f]{8}$/); // still the first worker's claim
    expect(r.code, why(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { jobs: unknown[] }).jobs).toEqual([]);
    expect(r.stderr).toMatch(/1 side effect is running under another worker's lease: left to it/);
    expect(api.seen).toHaveLength(1);
    const [job] = await db.sql<{ status: string; claimed_by: string | null; lease_until: Date | null }[]>`SELECT status, claimed_by, lease_until FROM purgekit.outbox`;
    expect(job).toEqual({ status: 'done', claimed_by: null, lease_until: null });
  });
});
