/**
 * A policy's params and flags from its plan artifact alone (src/render/artifact.ts): what the
 * command line of plan and apply of a reviewed file needs, without the YAML library or the
 * schema (policyOptions.ts falls back to those). Kept apart so that cli.ts can try it first.
 */
import { basename, join, resolve } from 'node:path';
import { DEFAULT_OUT } from '../commands/defaults.js';
import { artifactPolicy } from '../render/artifact.js';
import type { DeclaredOptions } from './policyOptions.js';

/**
 * From the plan artifact of generated/ (src/render/artifact.ts), when it was compiled from the
 * policy file as it is now (same sha256): the YAML library and the schema stay unloaded, which
 * plan and apply of a reviewed file otherwise loaded only for this.
 */
export function declaredFromArtifact(target: string, policiesDir: string): DeclaredOptions | undefined {
  const yaml = /\.ya?ml$/.test(target);
  const sqlPath = target.endsWith('.sql') ? target : join(DEFAULT_OUT, `${yaml ? basename(target).replace(/\.ya?ml$/, '') : target}.sql`);
  if (!target.endsWith('.sql') && !yaml && !/^[^/\\]+$/.test(target)) return undefined;
  const policy = artifactPolicy(sqlPath, target.endsWith('.sql') || yaml ? undefined : policiesDir);
  if (!policy) return undefined;
  if (yaml ? resolve(policy.source.path) !== resolve(target) : !target.endsWith('.sql') && policy.name !== target) return undefined;
  return { name: policy.name, kind: policy.kind, file: policy.source.path, params: policy.params, flags: policy.flags };
}

/** The policy a command line most likely names (the first word after the command), and --policies. */
export function likelyTarget(argv: readonly string[], commands: ReadonlySet<string>): { target?: string; policiesDir?: string } {
  const at = argv.findIndex((a) => commands.has(a));
  const target = at < 0 ? undefined : argv.slice(at + 1).find((a) => !a.startsWith('-'));
  const i = argv.findIndex((a) => a === '--policies' || a.startsWith('--policies='));
  const policiesDir = i < 0 ? undefined : argv[i]!.includes('=') ? argv[i]!.slice('--policies='.length) : argv[i + 1];
  return { ...(target !== undefined ? { target } : {}), ...(policiesDir !== undefined ? { policiesDir } : {}) };
}
