/**
 * src/sql/keywords.ts is the parser's own list: every keyword in libpg-query's keyword table
 * (read from its WASM, where PostgreSQL's ScanKeywords is one NUL-separated string) that its
 * scanner does not call unreserved, and nothing else.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { NON_UNRESERVED_KEYWORDS } from '../src/sql/keywords.js';
import { loadParser, scan } from '../src/sql/parser.js';
import { quoteIdent } from '../src/sql/quote.js';

function parserKeywords(): string[] {
  const wasm = createRequire(import.meta.url).resolve('libpg-query/wasm/libpg-query.wasm');
  const text = readFileSync(wasm).toString('latin1');
  let at = text.indexOf('abort\0absent\0absolute\0');
  expect(at).toBeGreaterThan(0);
  const words: string[] = [];
  for (;;) {
    const end = text.indexOf('\0', at);
    const word = text.slice(at, end);
    if (!/^[a-z_]+$/.test(word)) break;
    words.push(word);
    at = end + 1;
  }
  return words;
}

describe('keywords', () => {
  it('are the parser keywords that need quotes as names', async () => {
    await loadParser();
    const words = parserKeywords();
    expect(words.length).toBeGreaterThan(450);
    expect(words).toContain('zone');
    const needQuotes = words.filter((w) => {
      const tokens = scan(w);
      return tokens.length === 1 && !['NO_KEYWORD', 'UNRESERVED_KEYWORD'].includes(tokens[0]!.keywordName);
    });
    expect([...NON_UNRESERVED_KEYWORDS].sort()).toEqual(needQuotes.sort());
  });

  it('quote names as quote_ident does', () => {
    expect(quoteIdent('user')).toBe('"user"');
    expect(quoteIdent('users')).toBe('users');
    expect(quoteIdent('name')).toBe('name'); // unreserved
    expect(quoteIdent('Account')).toBe('"Account"');
  });
});
