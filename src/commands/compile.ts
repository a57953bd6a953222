import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../plan/compile.js';
import type { Plan } from '../plan/nodes.js';
import { InvalidPolicyError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { artifactPath, artifactText } from '../render/artifact.js';
import { checksumOf, render } from '../render/render.js';
import { sourceLabel } from '../render/source.js';
import type { ValidatedFiles } from '../validate/validateFiles.js';

export { DEFAULT_OUT, DEFAULT_POLICIES } from './defaults.js';

/** The generated file of each policy: path -> text. Pure; writes nothing. */
export function generate(policies: readonly Policy[], outDir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const policy of policies) {
    files.set(join(outDir, `${policy.name}.sql`), renderPolicyFile(policy, outDir));
  }
  return files;
}

export function renderPolicyFile(policy: Policy, outDir: string): string {
  return renderPlanFile(compile(policy), outDir);
}

/** The generated file of a compiled plan, as it sits in outDir. */
export function renderPlanFile(plan: Plan, outDir: string): string {
  return render(plan, { sourceLabel: sourceLabel(plan, outDir) });
}

export { sourceLabel } from '../render/source.js';

/**
 * Each policy's plan artifact (generated/<name>.plan.json, src/render/artifact.ts): path -> text.
 * Pure; writes nothing. What lets plan and apply of a reviewed file start without the parser.
 */
export function generateArtifacts(policies: readonly Policy[], outDir: string): Map<string, string> {
  return new Map(policies.map((policy) => [artifactPath(join(outDir, `${policy.name}.sql`)), artifactText(policy, outDir)]));
}

/** Validation loads the YAML library and the SQL parser: only the commands that validate import it. */
async function validated(paths: readonly string[]): Promise<ValidatedFiles> {
  const { validateFiles } = await import('../validate/validateFiles.js');
  return validateFiles(paths);
}

export interface CompileResult {
  readonly written: readonly string[];
  readonly unchanged: readonly string[];
}

export async function compileCommand(paths: readonly string[], outDir: string): Promise<CompileResult> {
  const { policies, diagnostics } = await validated(paths);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  const unchanged: string[] = [];
  for (const [path, text] of [...generate(policies, outDir), ...generateArtifacts(policies, outDir)]) {
    const current = readIfThere(path);
    if (current === text) {
      unchanged.push(path);
    } else {
      writeFileSync(path, text);
      written.push(path);
    }
  }
  return { written, unchanged };
}

/**
 * compile --check: every problem between policies and generated/, named file by file.
 * Orphans are only looked for when the whole policies directory was compiled (a partial
 * compile cannot know which files other policies own).
 */
export async function checkCommand(paths: readonly string[], outDir: string, options: { orphans: boolean }): Promise<string[]> {
  const { policies, diagnostics } = await validated(paths);
  if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
  const problems: string[] = [];
  const expected = generate(policies, outDir);
  for (const [path, text] of expected) {
    const current = readIfThere(path);
    if (current === undefined) problems.push(`${path}: missing (run purgekit compile)`);
    else if (checksumOf(current).recorded !== checksumOf(current).actual) problems.push(`${path}: hand-edited (its checksum does not match its text); run purgekit compile to restore it`);
    else if (current !== text) problems.push(`${path}: stale (its policy changed since it was compiled); run purgekit compile`);
  }
  const artifacts = generateArtifacts(policies, outDir);
  for (const [path, text] of artifacts) {
    const current = readIfThere(path);
    if (current === undefined) problems.push(`${path}: missing (run purgekit compile)`);
    else if (current !== text) problems.push(`${path}: stale or edited (it is not what its policy compiles to); run purgekit compile`);
  }
  if (options.orphans) {
    const present = listing(outDir).filter((f) => f.endsWith('.sql') || f.endsWith('.plan.json')).sort();
    for (const file of present) {
      const path = join(outDir, file);
      if (!expected.has(path) && !artifacts.has(path)) problems.push(`${path}: orphaned (no policy compiles to it); delete it or restore its policy`);
    }
  }
  return problems;
}

// Synchronous file access: hundreds of small files, for which the promise API's handles cost
// more than the reads and writes themselves.
function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function listing(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
