/**
 * Author SQL checks that need inputs too large for a golden folder: the size bound, and that
 * validation stays linear in the size of a fragment (issue 9 item 10). The safety checks
 * themselves are golden folders: test/golden/sql-*.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../src/core/errors.js';
import { parsePolicyText } from '../src/load/loadPolicy.js';
import { checkValue, checkWhere, MAX_FRAGMENT_BYTES } from '../src/sql/fragment.js';
import { loadParser } from '../src/sql/parser.js';
import { validatePolicy } from '../src/validate/validatePolicy.js';
import { CORE_FUNCTIONS, VOLATILE_FUNCTIONS } from '../src/sql/volatileFunctions.js';
import { createTestDatabase } from './harness/db.js';

const policy = (where: string) => `version: 1\nname: big\nkind: cleanup\nsteps:\n  - table: sessions\n    where: ${where}\n`;

describe('author SQL size', () => {
  beforeAll(() => loadParser());

  it('refuses a 1.8 MB where (200k AND true) at its place, without parsing it', () => {
    const where = `id = 1${' AND true'.repeat(200_000)}`;
    const result = validatePolicy(parsePolicyText('big.yaml', policy(where)));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([
      `big.yaml:6:12: steps[0].where: is ${Buffer.byteLength(where).toLocaleString('en')} bytes of SQL, more than the 65,536 allowed here: split the step, or move the logic into a view`,
    ]);
  });

  it('validates a where just under the bound, in one pass over its tokens', () => {
    const where = `id = 1${' AND true'.repeat(Math.floor((MAX_FRAGMENT_BYTES - 10) / 9))}`;
    expect(Buffer.byteLength(where)).toBeLessThanOrEqual(MAX_FRAGMENT_BYTES);
    const result = validatePolicy(parsePolicyText('big.yaml', policy(where)));
    expect(result.ok && result.policy.steps[0]!.where!.text).toBe(where);
  });

  it('places a problem after many multi-byte characters at the right character', () => {
    const where = `${"name = '€😀' AND ".repeat(2000)}pg_sleep(1) IS NOT NULL`;
    const result = checkWhere(where);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => where.slice(p.offset, p.offset + 8))).toEqual(['pg_sleep']);
  });

  it('a deeply nested expression neither overflows the walk nor passes', () => {
    const where = `${'('.repeat(500)}pg_sleep(1) IS NULL${')'.repeat(500)}`;
    const result = checkWhere(where);
    expect(result.ok).toBe(false);
  });
});

describe('value expressions (anonymize)', () => {
  beforeAll(() => loadParser());

  it('accepts one expression and refuses writes and volatile calls in it', () => {
    expect(checkValue("'user-' || md5(id::text)").ok).toBe(true);
    expect(checkValue('gen_random_uuid()').ok).toBe(true);
    const bad = checkValue("(SELECT set_config('session_replication_role', 'replica', true))");
    expect(bad.ok ? [] : bad.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^set_config\(\) is a volatile PostgreSQL function/)]);
    expect(checkValue('1, 2').ok).toBe(false);
  });
});

describe('the committed function list (scripts/function-list.ts)', () => {
  it('covers the server under test: every volatile built-in is listed, every built-in is known', async () => {
    const db = await createTestDatabase();
    const rows = await db.sql<{ name: string; volatile: boolean }[]>`
      SELECT proname AS name, bool_or(provolatile = 'v') AS volatile FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace GROUP BY 1`;
    const [{ version }] = (await db.sql`SELECT current_setting('server_version') AS version`) as unknown as [{ version: string }];
    const hint = `PostgreSQL ${version} is not covered: run scripts/function-list.ts against it and commit src/sql/volatileFunctions.ts`;
    expect(rows.filter((r) => r.volatile && !VOLATILE_FUNCTIONS.has(r.name)).map((r) => r.name), hint).toEqual([]);
    expect(rows.filter((r) => !CORE_FUNCTIONS.has(r.name)).map((r) => r.name), hint).toEqual([]);
  });
});

describe('whatever validates, the formatter keeps as written', () => {
  beforeAll(() => loadParser());

  /** Deterministic pseudo-random pieces of author SQL, odd characters included. */
  function* fuzzed(count: number): Generator<string> {
    let seed = 42;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const names = ['a', 'prix€', '"prix€"', 'é', 'aé', 'x\u00a0', 'x\u200b', '😀', '"😀"', 'x\ufffdy', '"x\ufffdy"', 'a٣', 'a$b', 'U&"d\\0061t"', '"a""b"', 'select', '"select"'];
    const values = ["'€😀'", "E'a\\'b'", '$$x$$', '$t$x$t$', '$€$x$€$', '1', '.5', '1e3', "B'101'", 'NULL', 'true', ':p'];
    const ops = ['=', '<>', '<', '->>', '@>', '~*', 'LIKE', 'IS DISTINCT FROM', 'IN'];
    for (let i = 0; i < count; i++) {
      const parts: string[] = [];
      for (let j = 0, n = 1 + next(3); j < n; j++) {
        const op = ops[next(ops.length)]!;
        const rhs = op === 'IN' ? `(${values[next(values.length)]}, ${values[next(values.length)]})` : values[next(values.length)]!;
        parts.push(`${names[next(names.length)]} ${op} ${rhs}`);
      }
      yield parts.join([' AND ', ' OR '][next(2)]!);
    }
  }

  it('2,000 fuzzed conditions: each is refused, or formats without error to the same tokens', async () => {
    const { formatSql } = await import('../src/sql/format.js');
    const { scan } = await import('../src/sql/parser.js');
    const tokens = (sql: string) => scan(sql).map((t) => t.text);
    let valid = 0;
    for (const where of fuzzed(2000)) {
      const result = checkWhere(where);
      if (!result.ok) continue;
      valid++;
      const sql = `SELECT 1 WHERE (${where.replaceAll(':p', '$1')})`;
      expect(tokens(formatSql(sql)), where).toEqual(tokens(sql));
    }
    expect(valid).toBeGreaterThan(200);
  });
});
