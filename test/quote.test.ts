import { beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { loadParser } from '../src/sql/parser.js';
import { LiteralError } from '../src/core/errors.js';
import { parseQualified, quoteIdent, quoteLiteral } from '../src/sql/quote.js';

/** Literals and identifiers are quoted exactly as PostgreSQL itself does: compared on a real server. */
const ADVERSARIAL = [
  '', 'plain', "it's", "''", '\\', 'back\\slash', "\\'", "'\\''", '$$', '$tag$ x $tag$', '-- comment', '/* c */', ":'x'", ':x',
  'line\nbreak', 'cr\r\nlf', '\u200f\u202eRTL', '😀 emoji', 'tab\there', "E'x'", 'U&"x"', ';DROP TABLE users;--', '\u00a0nbsp',
];
const IDENTIFIERS = ['users', 'User', 'order', 'select', 'user', 'a b', 'weird"name', '_x1$', '1abc', 'ünïcode', 'name', 'type'];

beforeAll(loadParser);

describe('quoteLiteral and quoteIdent against the server', () => {
  for (const standard of ['on', 'off']) {
    it(`equal format('%L') and round-trip with standard_conforming_strings = ${standard}`, async () => {
      const db = await createTestDatabase();
      await db.sql.unsafe(`SET standard_conforming_strings = ${standard}`);
      for (const value of ADVERSARIAL) {
        const [{ l }] = (await db.sql`SELECT format('%L', ${value}::text) AS l`) as unknown as [{ l: string }];
        expect(quoteLiteral(value)).toBe(l);
        const [{ v }] = (await db.sql.unsafe(`SELECT ${quoteLiteral(value)}::text AS v`)) as unknown as [{ v: string }];
        expect(v).toBe(value);
      }
    });
  }

  it("quote identifiers like quote_ident()", async () => {
    const db = await createTestDatabase();
    for (const name of IDENTIFIERS) {
      const [{ q }] = (await db.sql`SELECT quote_ident(${name}) AS q`) as unknown as [{ q: string }];
      expect(quoteIdent(name)).toBe(q);
    }
  });

  it('rejects NUL bytes and lone surrogates instead of altering them', () => {
    expect(() => quoteLiteral('a\0b')).toThrow(LiteralError);
    expect(() => quoteLiteral('a\ud800b')).toThrow(/surrogate/);
    expect(() => quoteLiteral('\udc00')).toThrow(/surrogate/);
  });
});

describe('parseQualified', () => {
  it("splits format('%I.%I') back into schema and name, for every identifier", async () => {
    const db = await createTestDatabase();
    for (const schema of ['public', 'My Schema', 'we.ird']) {
      for (const name of IDENTIFIERS) {
        const [row] = await db.sql<{ q: string }[]>`SELECT format('%I.%I', ${schema}::text, ${name}::text) AS q`;
        expect(parseQualified(row!.q), row!.q).toEqual({ schema, name });
      }
    }
    for (const text of ['users', 'a.b.c', '"a.b', '"".x', '']) expect(parseQualified(text), text).toBeNull();
  });
});
