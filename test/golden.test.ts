/**
 * Golden folders (test/golden/<case>/): policy files in; out either the generated SQL
 * (<name>.sql beside the policy) or stderr.txt with every diagnostic, file:line:col first.
 * UPDATE_GOLDEN=1 rewrites the expected files; review the diff before committing it.
 */
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
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

/**
 * Compared both ways: every expected file of a case (its .sql files, its stderr.txt) must be one
 * the case produces now, so a golden file left behind by a renamed or removed policy fails too.
 */
function noStrayFiles(dir: string, produced: readonly string[]): void {
  const stray = readdirSync(dir)
    .filter((f) => f.endsWith('.sql') || f === 'stderr.txt')
    .map((f) => join(dir, f))
    .filter((path) => !produced.includes(path));
  if (update) stray.forEach((path) => unlinkSync(path));
  else expect(stray, 'golden files that nothing produces any more: run UPDATE_GOLDEN=1 npm test and review').toEqual([]);
}

describe('golden', () => {
  for (const name of readdirSync(DIR).sort()) {
    const dir = join(DIR, name);
    it(name, async () => {
      const { policies, diagnostics } = await validateFiles([dir]);
      if (name.startsWith('valid-')) {
        expect(diagnostics.map(formatDiagnostic)).toEqual([]);
        const generated = generate(policies, dir);
        noStrayFiles(dir, [...generated.keys()]);
        for (const [path, text] of generated) {
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
        noStrayFiles(dir, [join(dir, 'stderr.txt')]);
      }
    });
  }
});
