/**
 * `purgekit ledger replay`: the subjects `ledger check` finds are purged again through the
 * many-subjects path (src/volume, the same as apply --subjects-from): their keys go to a JSON
 * lines file (0600, in a 0700 temporary directory, removed afterwards), one subject per line,
 * under the param of the policy's lookup by the key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';
import type { FoundSubject } from './check.js';

/**
 * The param of the lookup that finds a subject by its key alone (`where: <key> = :<param>`),
 * whose value is taken as written (no normalize): what replay writes the found keys under.
 */
export function keyLookupParam(policy: Policy): string {
  const subject = policy.subject!;
  const names = new Set([subject.key, quoteIdent(subject.key)]);
  for (const lookup of subject.lookup) {
    if (lookup.by.length !== 1) continue;
    const param = lookup.by[0]!;
    const refs = lookup.where.parts.filter((p) => typeof p !== 'string');
    if (refs.length !== 1 || refs[0]!.ref !== param) continue;
    const text = lookup.where.parts.map((p) => (typeof p === 'string' ? p : '\u0000')).join('').replace(/\s+/g, '');
    const sides = text.split('=');
    if (sides.length !== 2 || !sides.includes('\u0000') || !sides.some((s) => names.has(s))) continue;
    const decl = policy.params.find((p) => p.name === param);
    if (decl?.normalize) continue;
    return param;
  }
  const lookups = subject.lookup.map((l) => `by [${l.by.join(', ')}]`).join(', ');
  throw new UsageError(
    `${policy.name}: ledger replay finds each subject by its key ${subject.key}, and no lookup of the policy does (${lookups}): add one such as { by: [${subject.key}], where: "${subject.key} = :${subject.key}" } (a param without normalize), then compile`,
  );
}

/** The found subjects as a subjects file of JSON lines; remove() deletes it. */
export function subjectsFile(param: string, found: readonly FoundSubject[]): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-replay-'));
  const path = join(dir, 'subjects.jsonl');
  writeFileSync(path, found.map((f) => `${JSON.stringify({ [param]: f.key[0] })}\n`).join(''), { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
