/**
 * Generated scripts for tests: the committed file, or the same script with its parameter
 * block filled in exactly as `purgekit render` does.
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCommand } from '../../src/commands/render.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const POLICIES = join(ROOT, 'policies');
export const GENERATED = join(ROOT, 'generated');

export function committedScript(name: string): string {
  return readFileSync(join(GENERATED, `${name}.sql`), 'utf8');
}

/** `purgekit render <name> --<param> <value> ...`: values keyed by param or flag name (snake or kebab). */
export function renderedScript(name: string, values: Record<string, string | boolean> = {}): Promise<string> {
  return renderCommand(join(GENERATED, `${name}.sql`), { policiesDir: POLICIES, values, pairs: [] });
}

/** Writes text to a fresh temporary file (for psql -f) and returns its path. */
export function tempFile(text: string, name = 'script.sql'): string {
  const path = join(mkdtempSync(join(tmpdir(), 'purgekit-test-')), name);
  writeFileSync(path, text);
  return path;
}
