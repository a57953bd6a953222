/**
 * Connection URLs as providers hand them out: the libpq URL parameters users copy (password,
 * sslmode, options, application_name, ...) are honoured or refused by name, never ignored, and a
 * password is never printed whichever way it was given.
 */
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { purgekit, why } from './run-helpers.js';
import { connect, currentDatabase } from '../src/db/connect.js';

/** The test database's URL with its password moved into ?password= (and extra parameters). */
function withQueryPassword(url: string, password: string, extra = ''): string {
  const u = new URL(url);
  u.password = '';
  return `${u.toString()}?password=${encodeURIComponent(password)}${extra}`;
}

async function settingsVia(url: string, names: string[]): Promise<Record<string, string>> {
  const conn = connect(url);
  try {
    await currentDatabase(conn);
    const out: Record<string, string> = {};
    for (const name of names) out[name] = String((await conn.sql`SELECT current_setting(${name}) AS v`)[0]!['v']);
    return out;
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

describe('libpq URL parameters', () => {
  it('?password= authenticates (it was sent to the server as a setting, and authentication failed)', async () => {
    const db = await createTestDatabase();
    const password = decodeURIComponent(new URL(db.url).password);
    expect(password, 'the test server checks passwords').not.toBe('');
    const r = await purgekit(['counts', '--connection', withQueryPassword(db.url, password)]);
    expect(r.code, why(r)).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(password);
    const wrong = 'Wr0ng&pw%=x';
    const bad = await purgekit(['counts', '--connection', withQueryPassword(db.url, wrong)]);
    expect(bad.code, why(bad)).toBe(5);
    expect(bad.stderr).toMatch(/password authentication failed/);
    for (const spelling of [wrong, encodeURIComponent(wrong)]) expect(bad.stdout + bad.stderr).not.toContain(spelling);
  });

  it('?password= is percent-decoded as libpq does: + stays +, %2B is +, %26 is &', () => {
    for (const [query, password] of [['a+b', 'a+b'], ['a%2Bb%26c%3D', 'a+b&c='], ['%F0%9F%94%91', '\u{1F511}']] as const) {
      const conn = connect(`postgres://u@127.0.0.1:1/db?password=${query}&sslmode=disable`);
      expect((conn.sql.options as unknown as { pass: string }).pass).toBe(password);
      expect(conn.secrets).toContain(password);
      void conn.sql.end();
    }
    expect(() => connect('postgres://u@127.0.0.1:1/db?password=%zz')).toThrow(/malformed %-escape/);
    expect(() => connect('postgres://u@127.0.0.1:1/db?password=%zz')).not.toThrow(/%zz/);
  });

  it('options, application_name, user, dbname and sslmode=disable are applied', async () => {
    const db = await createTestDatabase();
    const u = new URL(db.url);
    const password = decodeURIComponent(u.password);
    const user = u.username;
    const base = `postgres://${u.host}/?password=${encodeURIComponent(password)}&user=${user}&dbname=${db.name}`;
    const got = await settingsVia(`${base}&options=${encodeURIComponent('-c statement_timeout=4321ms -c search_path=x')}&application_name=from-url&sslmode=disable`, [
      'statement_timeout', 'search_path', 'application_name',
    ]);
    expect(got).toEqual({ statement_timeout: '4321ms', search_path: 'x', application_name: 'from-url' });
    expect(await settingsVia(withQueryPassword(db.url, password), ['application_name'])).toEqual({ application_name: 'purgekit' });
  });

  it('sslmode=require is honoured: the test server has no TLS, so the connection fails (exit 5)', async () => {
    const db = await createTestDatabase();
    const r = await purgekit(['counts', '--connection', `${db.url}?sslmode=require`]);
    expect(r.code, why(r)).toBe(5);
  });

  it('parameters purgekit cannot honour are refused by name (exit 2), not ignored', async () => {
    const db = await createTestDatabase();
    for (const [param, message] of [
      ['sslcert=/tmp/x.crt', /the URL parameter sslcert is not supported; purgekit understands password, user, dbname/],
      ['channel_binding=require', /channel_binding=require is not supported/],
      ['password:S3cr3t-x', /a URL parameter is not supported/],
      ['sslmode=maybe', /sslmode=maybe is not one of disable, allow, prefer, require, verify-ca, verify-full/],
    ] as const) {
      const r = await purgekit(['counts', '--connection', `${db.url}?${param}`]);
      expect(r.code, `${param}: ${why(r)}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(decodeURIComponent(new URL(db.url).password));
      expect(r.stderr).not.toContain('S3cr3t');
    }
  });
});
