import { setFlagsFromString } from 'node:v8';
import { createRequire } from 'node:module';

// libpg-query is CommonJS. require() loads it in about a third of the CPU time import() takes
// here (the ESM loader's translation of a CommonJS module), and validate starts with it
// (README: Performance; npm run bench:startup).
const { loadModule, parseSync, scanSync } = createRequire(import.meta.url)('libpg-query') as typeof import('libpg-query');

/**
 * The real PostgreSQL parser and scanner (libpg-query, WASM). Its module must be loaded once
 * before the synchronous calls work; every entry point that validates SQL awaits this first.
 */
let loaded: Promise<void> | undefined;
export function loadParser(): Promise<void> {
  // Baseline (Liftoff) code only: V8 otherwise recompiles the parser's hot functions with
  // TurboFan after the first parse, which kept a one-policy validate busy 0.2-0.7 s after its
  // work was done; the policies' fragments are far too small for optimized code to pay that back.
  // (README: Performance.)
  if (!loaded) setFlagsFromString('--liftoff-only');
  loaded ??= loadModule();
  return loaded;
}

export interface Token {
  /** UTF-8 byte offsets into the scanned text. */
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly tokenName: string;
  readonly keywordName: string;
}

export function scan(text: string): readonly Token[] {
  return (scanSync(text) as { tokens: Token[] }).tokens;
}

export interface ParseFailure {
  readonly message: string;
  /** 0-based byte offset into the parsed text, when the parser gave one. */
  readonly offset?: number;
}

export type ParseResult = { ok: true; stmts: readonly { stmt: Record<string, unknown> }[] } | { ok: false; error: ParseFailure };

export function parse(text: string): ParseResult {
  try {
    const tree = parseSync(text) as { stmts?: { stmt: Record<string, unknown> }[] };
    return { ok: true, stmts: tree.stmts ?? [] };
  } catch (e) {
    const details = (e as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    return {
      ok: false,
      error: { message: details?.message ?? String((e as Error).message), offset: details?.cursorPosition },
    };
  }
}
