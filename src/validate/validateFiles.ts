import type { Diagnostic } from '../core/errors.js';
import { findPolicyFiles } from '../load/findPolicyFiles.js';
import { loadPolicyFile, locate, type LoadedFile } from '../load/loadPolicy.js';
import type { Policy } from '../policy.js';
import { loadParser } from '../sql/parser.js';
import { validatePolicy } from './validatePolicy.js';

export interface ValidatedFiles {
  readonly policies: readonly Policy[];
  readonly files: readonly LoadedFile[];
  /** Every problem of every file, in file order. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Load and validate every policy under paths; also checks that names are unique across files. */
export async function validateFiles(paths: readonly string[]): Promise<ValidatedFiles> {
  // The parser's WASM compiles while the files are found and read.
  const [files] = await Promise.all([findPolicyFiles(paths).then((found) => Promise.all(found.map(loadPolicyFile))), loadParser()]);
  const policies: Policy[] = [];
  const diagnostics: Diagnostic[] = [];
  const byName = new Map<string, string>();
  for (const file of files) {
    const result = validatePolicy(file);
    if (!result.ok) {
      diagnostics.push(...result.diagnostics);
      continue;
    }
    const other = byName.get(result.policy.name);
    if (other) {
      diagnostics.push({ ...locate(file, ['name']), message: `name: "${result.policy.name}" is already the name of ${other} (each policy compiles to generated/<name>.sql)` });
      continue;
    }
    byName.set(result.policy.name, file.path);
    policies.push(result.policy);
  }
  return { policies, files, diagnostics };
}
