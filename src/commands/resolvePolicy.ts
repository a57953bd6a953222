import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidPolicyError, StalePlanError, UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { checksumOf, sourceOf } from '../render/render.js';
import { didYouMean } from '../validate/didYouMean.js';
import { validateFiles } from '../validate/validateFiles.js';
import { compile } from '../plan/compile.js';
import type { Plan } from '../plan/nodes.js';
import { renderPlanFile } from './compile.js';

export interface ResolvedPolicy {
  readonly policy: Policy;
  /** The policy compiled, once: every later stage of the command reads this value. */
  readonly plan: Plan;
  /** The generated file the policy was resolved through, if any, and its text (verified, LF line endings). */
  readonly generatedFile?: string;
  readonly generatedText?: string;
}

/**
 * A policy name, a policy file, or a generated .sql file -> its validated Policy. A generated
 * file must be exactly what its policy compiles to today: not edited, not stale.
 */
export async function resolvePolicy(target: string, policiesDir: string): Promise<ResolvedPolicy> {
  if (target.endsWith('.sql')) {
    const text = await readFile(target, 'utf8').catch(() => {
      throw new UsageError(`${target}: no such file`);
    });
    const { recorded, actual } = checksumOf(text);
    if (!recorded) throw new StalePlanError(target, 'not a purgekit generated file (no checksum line)');
    if (recorded !== actual) throw new StalePlanError(target, 'hand-edited: its checksum does not match its text; run purgekit compile');
    const source = sourceOf(text);
    if (!source) throw new StalePlanError(target, 'its header names no source policy');
    const policy = await single(join(dirname(target), source));
    const plan = compile(policy);
    const generatedText = renderPlanFile(plan, dirname(target));
    if (generatedText !== text.replace(/\r\n?/g, '\n')) {
      throw new StalePlanError(target, `stale: ${source} changed since it was compiled; run purgekit compile`);
    }
    return { policy, plan, generatedFile: target, generatedText };
  }
  if (/\.ya?ml$/.test(target)) return compiled(await single(target));
  const { policies, diagnostics } = await validateFiles([policiesDir]);
  const found = policies.find((p) => p.name === target);
  if (found) return compiled(found);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  const hint = didYouMean(target, policies.map((p) => p.name));
  throw new UsageError(`no policy named "${target}" in ${policiesDir}/${hint ? ` (did you mean "${hint}"?)` : ''}`);
}

function compiled(policy: Policy): ResolvedPolicy {
  return { policy, plan: compile(policy) };
}

async function single(path: string): Promise<Policy> {
  const { policies, diagnostics } = await validateFiles([path]);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  return policies[0]!;
}
