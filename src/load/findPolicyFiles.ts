import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../core/errors.js';

const POLICY_FILE = /\.ya?ml$/;

/** Files and directories (not recursive) -> policy files, sorted so every run sees the same order. */
export async function findPolicyFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new UsageError(`${path}: no such file or directory`);
    if (info.isDirectory()) {
      const entries = await readdir(path);
      files.push(...entries.filter((e) => POLICY_FILE.test(e)).sort().map((e) => join(path, e)));
    } else {
      files.push(path);
    }
  }
  return [...new Set(files)];
}
