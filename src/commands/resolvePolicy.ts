import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidPolicyError, StalePlanError, UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { reviewedFromArtifact } from '../render/artifact.js';
import { checksumOf, sourceOf } from '../render/render.js';
import { didYouMean } from '../validate/didYouMean.js';
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
 *
 * With `generatedDir` (plan, apply, verify) a reviewed generated file is first looked for
 * through its plan artifact (src/render/artifact.ts): then nothing is parsed but JSON, and the
 * file is still proven current against its policy's sha256. Anything else goes the full way:
 * load, validate (YAML, schema, the SQL parser), compile, compare.
 */
export async function resolvePolicy(target: string, policiesDir: string, generatedDir?: string): Promise<ResolvedPolicy> {
  const fast = await fromArtifact(target, policiesDir, generatedDir);
  if (fast) return fast;
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
  const { policies, diagnostics } = await validate([policiesDir]);
  const found = policies.find((p) => p.name === target);
  if (found) return compiled(found);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  const hint = didYouMean(target, policies.map((p) => p.name));
  throw new UsageError(`no policy named "${target}" in ${policiesDir}/${hint ? ` (did you mean "${hint}"?)` : ''}`);
}

/** The generated file a target runs through, when its artifact proves it current; else undefined. */
async function fromArtifact(target: string, policiesDir: string, generatedDir: string | undefined): Promise<ResolvedPolicy | undefined> {
  let sqlPath: string;
  let within: string | undefined;
  if (target.endsWith('.sql')) sqlPath = target;
  else if (generatedDir === undefined) return undefined;
  else if (/\.ya?ml$/.test(target)) sqlPath = join(generatedDir, `${basename(target).replace(/\.ya?ml$/, '')}.sql`);
  else {
    // A name is looked up in the policies directory, as the full path does.
    if (!/^[^/\\]+$/.test(target)) return undefined;
    sqlPath = join(generatedDir, `${target}.sql`);
    within = policiesDir;
  }
  const reviewed = await reviewedFromArtifact(sqlPath, within);
  if (!reviewed) return undefined;
  const { policy, plan, text } = reviewed;
  if (!target.endsWith('.sql') && !/\.ya?ml$/.test(target) && policy.name !== target) return undefined;
  if (/\.ya?ml$/.test(target) && resolve(policy.source.path) !== resolve(target)) return undefined;
  return { policy, plan, generatedFile: sqlPath, generatedText: text };
}

function compiled(policy: Policy): ResolvedPolicy {
  return { policy, plan: compile(policy) };
}

/** Validation loads the YAML library, the schema and the SQL parser: imported only on the full path. */
async function validate(paths: readonly string[]) {
  const { validateFiles } = await import('../validate/validateFiles.js');
  return validateFiles(paths);
}

async function single(path: string): Promise<Policy> {
  const { policies, diagnostics } = await validate([path]);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  return policies[0]!;
}
