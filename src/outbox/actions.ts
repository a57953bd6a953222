import { execFile } from 'node:child_process';
import { lstat, realpath, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { parseTemplate, type ActionSpec, type Placeholder } from './spec.js';

/**
 * Doing one job. Every action is idempotent: what is already gone counts as done (an HTTP
 * status in `ok` such as 404, DEL of a missing key, a missing file), so a job that ran and whose
 * worker died before marking it done is simply done again.
 */
export interface JobValues {
  readonly captured: Readonly<Record<string, unknown>> | null;
  readonly params: Readonly<Record<string, unknown>> | null;
  readonly env: NodeJS.ProcessEnv;
}

export type JobResult = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly error: string; readonly permanent?: boolean };

export class JobError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
  ) {
    super(message);
  }
}

/** What a placeholder stands for, or a JobError (an unset variable, a value the row did not have). */
function valueOf(p: Placeholder, v: JobValues): string {
  if (p.kind === 'env') {
    const value = v.env[p.name];
    if ((value === undefined || value === '') && p.fallback !== undefined) return p.fallback;
    if (value === undefined || value === '') throw new JobError(`environment variable ${p.name} is not set`);
    return value;
  }
  const from = p.kind === 'params' ? v.params : v.captured;
  const value = from?.[p.name];
  if (value === undefined || value === null) throw new JobError(`${p.text} has no value in this job (NULL)`, true);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A template filled in; `encode` applies to the row's and params' values, never to environment values. */
export function fill(template: string, v: JobValues, encode: (value: string) => string = (x) => x): string {
  const parsed = parseTemplate(template);
  if (!parsed.ok) throw new JobError(parsed.message, true);
  return parsed.parts.map((part) => (typeof part === 'string' ? part : part.kind === 'env' ? valueOf(part, v) : encode(valueOf(part, v)))).join('');
}

/** Glob characters of a value in a SCAN MATCH pattern are literal: a value cannot widen the pattern. */
const globEscape = (value: string) => value.replace(/[*?[\]\\]/g, '\\$&');

/** A value in a files path is one path segment: no separator, not "." or "..". */
function segment(value: string): string {
  if (value === '' || value === '.' || value === '..' || /[\\/\0]/.test(value)) throw new JobError(`a value in a files path is not a plain name (it is empty, "." or "..", or has a / or \\)`, true);
  return value;
}

export async function runAction(spec: ActionSpec, v: JobValues, timeoutMs = 30_000): Promise<string> {
  switch (spec.kind) {
    case 'http':
      return http(spec, v, timeoutMs);
    case 'redis':
      return redis(spec, v);
    case 'files':
      return files(spec, v);
    case 'command':
      return command(spec, v, timeoutMs);
  }
  throw new JobError(`unknown action kind ${JSON.stringify((spec as { kind?: unknown }).kind)} in the outbox row`, true);
}

async function http(spec: Extract<ActionSpec, { kind: 'http' }>, v: JobValues, timeoutMs: number): Promise<string> {
  const url = fill(spec.url, v, encodeURIComponent);
  const headers = Object.fromEntries(Object.entries(spec.headers).map(([h, t]) => [h, fill(t, v)]));
  let response: Response;
  try {
    response = await fetch(url, { method: spec.method, headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    throw new JobError(`${spec.method} ${url}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : `${(e as Error).message}${cause ? ` (${cause})` : ''}`}`);
  }
  await response.body?.cancel().catch(() => {});
  if (!spec.ok.includes(response.status)) throw new JobError(`${spec.method} ${url}: HTTP ${response.status} (done on ${spec.ok.join(', ')})`);
  return `HTTP ${response.status}`;
}

async function redis(spec: Extract<ActionSpec, { kind: 'redis' }>, v: JobValues): Promise<string> {
  const url = fill(spec.url, v);
  const keys = spec.del.map((k) => fill(k, v));
  const patterns = spec.unlink.map((p) => fill(p, v, globEscape));
  // Loaded when a redis job runs: every plan and apply imports this module, few need a Redis client (~100 ms to load).
  const { createClient } = await import('redis');
  const client = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: false } });
  client.on('error', () => {}); // the failing command reports it
  try {
    await client.connect();
    const deleted = keys.length ? await client.del(keys) : 0;
    let unlinked = 0;
    for (const pattern of patterns) {
      for await (const key of client.scanIterator({ MATCH: pattern, COUNT: 500 })) unlinked += await client.unlink(key);
    }
    return `${deleted} deleted, ${unlinked} unlinked`;
  } catch (e) {
    throw new JobError(`redis: ${(e as Error).message}`);
  } finally {
    if (client.isOpen) await client.quit().catch(() => {});
  }
}

/** Under its root only: the path as written, and what it resolves to through symlinks. */
async function files(spec: Extract<ActionSpec, { kind: 'files' }>, v: JobValues): Promise<string> {
  const rootText = fill(spec.root, v);
  let root: string;
  try {
    root = await realpath(rootText);
    if (!(await lstat(root)).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new JobError(`files root ${spec.root} does not exist or is not a directory (${(e as Error).message})`);
  }
  const inside = (p: string) => p !== root && !relative(root, p).startsWith('..') && !isAbsolute(relative(root, p));
  let removed = 0;
  for (const template of spec.remove) {
    const rel = fill(template, v, segment);
    const path = join(root, rel);
    if (!inside(path)) throw new JobError(`files: ${template} leaves the root ${spec.root}: refused`, true);
    // Every existing directory on the way must resolve inside the root (a symlinked parent could
    // lead anywhere); the last component itself is removed as what it is (a symlink: the link).
    const parts = relative(root, path).split(sep);
    let at = root;
    let gone = false;
    for (const [i, part] of parts.entries()) {
      at = join(at, part);
      let stat;
      try {
        stat = await lstat(at);
      } catch {
        gone = true;
        break;
      }
      if (i < parts.length - 1 && stat.isSymbolicLink()) {
        const real = await realpath(at).catch(() => undefined);
        if (!real || !inside(real)) throw new JobError(`files: ${template} passes through a symlink that points outside the root ${spec.root}: refused`, true);
      }
      if (i === parts.length - 1 && stat.isSymbolicLink()) {
        const real = await realpath(at).catch(() => undefined);
        if (real && !inside(real)) throw new JobError(`files: ${template} is a symlink that points outside the root ${spec.root}: refused`, true);
      }
    }
    if (gone) continue;
    await rm(path, { recursive: true, force: true });
    removed += 1;
  }
  return `${removed} of ${spec.remove.length} removed (the others were already gone)`;
}

async function command(spec: Extract<ActionSpec, { kind: 'command' }>, v: JobValues, timeoutMs: number): Promise<string> {
  const [program, ...args] = spec.argv.map((a) => fill(a, v));
  return new Promise((resolve, reject) => {
    execFile(program!, args, { timeout: timeoutMs, env: v.env, maxBuffer: 1 << 20 }, (error, _stdout, stderr) => {
      if (!error) return resolve('exit 0');
      const status = typeof error.code === 'number' ? `exit ${error.code}` : error.signal ? `killed by ${error.signal}` : error.message;
      reject(new JobError(`command ${spec.argv[0]}: ${status}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-1)[0]!.slice(0, 300)}` : ''}`, error.code === 'ENOENT'));
    });
  });
}
