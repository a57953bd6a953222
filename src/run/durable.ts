import { mkdirSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p` that always ends. fs.mkdir's recursive mode loops forever where mkdir(2) answers
 * ENOENT for a directory whose parent exists (under /proc), so the missing directories are made
 * one by one, parents first, and any error is thrown as it comes.
 */
export function ensureDirectory(dir: string, mode = 0o700): void {
  const missing: string[] = [];
  for (let at = resolve(dir); ; at = dirname(at)) {
    try {
      if (!statSync(at).isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory: ${at}`), { code: 'ENOTDIR' });
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT' || dirname(at) === at) throw e;
      missing.push(at);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
    }
  }
}

/** write(2) may write less than asked (a file size limit, a full disk): go on until all is out. */
export function writeAll(fd: number, chunk: Buffer): void {
  for (let offset = 0; offset < chunk.length; ) {
    const written = writeSync(fd, chunk, offset);
    if (written <= 0) throw new Error('the file system accepted no more bytes');
    offset += written;
  }
}
