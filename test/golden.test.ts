/**
 * Golden folders (test/golden/<case>/): policy files in; out either the generated SQL
 * (<name>.sql beside the policy) or stderr.txt with every diagnostic, file:line:col first.
 * UPDATE_GOLDEN=1 rewrites the expected files; review the diff before committing it.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../src/commands/compile.js';
import { formatDiagnostic } from '../src/core/errors.js';
import { validateFiles } from '../src/validate/validateFiles.js';

const DIR = new URL('./golden/', import.meta.url).pathname;
const update = process.env['UPDATE_GOLDEN'] === '1';

function expectFile(path: string, actual: string): void {
  if (update) writeFileSync(path, actual);
  expect(existsSync(path), `${path} is missing: run UPDATE_GOLDEN=1 npm test and review it`).toBe(true);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

describe('golden', () => {
  for (const name of readdirSync(DIR).sort()) {
    const dir = join(DIR, name);
    it(name, async () => {
      const { policies, diagnostics } = await validateFiles([dir]);
      if (name.startsWith('valid-')) {
        expect(diagnostics.map(formatDiagnostic)).toEqual([]);
        for (const [path, text] of generate(policies, dir)) {
          expectFile(path, text);
          // Deterministic.
          expect(generate(policies, dir).get(path)).toBe(text);
          // Every line that is not SQL of ours is a whole comment: nothing from the policy runs.
          expect(text.split(/\r\n?|\n/).filter((l) => /DELETE FROM keepme/.test(l) && !l.startsWith('--'))).toEqual([]);
        }
      } else {
        expect(diagnostics.length).toBeGreaterThan(0);
        const stderr = `${diagnostics.map(formatDiagnostic).join('\n')}\n`.replaceAll(`${dir}/`, '');
        expectFile(join(dir, 'stderr.txt'), stderr);
      }
    });
  }
});
