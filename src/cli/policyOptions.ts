/**
 * A policy's params and flags as command-line options, read from the policy itself: the YAML
 * and the precompiled schema only (no SQL parser), so that `apply <policy> --help` and
 * completion stay fast. The command still validates the policy in full before it runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { declaredFromArtifact } from './policyArtifact.js';
import { decodeUtf8, parsePolicyText } from '../load/loadPolicy.js';
import type { FlagDecl, ParamDecl, PolicyKind } from '../policy.js';
import { sourceOf } from '../render/source.js';
import { flagDecls, paramDecls } from '../validate/declarations.js';
import { schemaDiagnostics } from '../validate/schema.js';

/** What a policy declares that a command line sets. */
export interface DeclaredOptions {
  readonly name: string;
  readonly kind: PolicyKind;
  readonly file: string;
  readonly params: readonly ParamDecl[];
  readonly flags: readonly FlagDecl[];
}

/**
 * A policy name, policy file or generated .sql file -> what the policy declares; undefined when
 * it cannot be found or does not pass the schema (the command then reports why, in full).
 */
export function declaredOptions(target: string, policiesDir: string): DeclaredOptions | undefined {
  return declaredFromArtifact(target, policiesDir) ?? fromYaml(target, policiesDir);
}

function fromYaml(target: string, policiesDir: string): DeclaredOptions | undefined {
  if (target.endsWith('.sql')) {
    const text = read(target);
    const source = text === undefined ? undefined : sourceOf(text);
    return source === undefined ? undefined : fromFile(join(dirname(target), source));
  }
  if (/\.ya?ml$/.test(target)) return fromFile(target);
  // By name: the file named after the policy first (the usual layout), then every file.
  const named = [`${target}.yaml`, `${target}.yml`].map((f) => join(policiesDir, f));
  let others: string[] = [];
  try {
    others = readdirSync(policiesDir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(policiesDir, f));
  } catch {
    return undefined;
  }
  for (const path of [...named, ...others.filter((f) => !named.includes(f))]) {
    const found = fromFile(path);
    if (found?.name === target) return found;
  }
  return undefined;
}

/** Names of the policies in a directory, for completion. */
export function policyNames(policiesDir: string): string[] {
  let files: string[];
  try {
    files = readdirSync(policiesDir).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch {
    return [];
  }
  return files.flatMap((f) => {
    const found = fromFile(join(policiesDir, f));
    return found ? [found.name] : [];
  });
}

function fromFile(path: string): DeclaredOptions | undefined {
  const bytes = readBytes(path);
  if (!bytes) return undefined;
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok) return undefined;
  const file = parsePolicyText(path, decoded.text);
  if (file.syntaxErrors.length || schemaDiagnostics(file).length) return undefined;
  const raw = file.raw as Record<string, unknown>;
  return { name: raw['name'] as string, kind: raw['kind'] as PolicyKind, file: path, params: paramDecls(raw), flags: flagDecls(raw) };
}

function readBytes(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

function read(path: string): string | undefined {
  return readBytes(path)?.toString('utf8');
}
