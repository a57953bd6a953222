/**
 * after_commit: side effects outside the database (an HTTP call, Redis keys, files, a command),
 * queued in the purge's own transaction (purgekit.outbox) and run after COMMIT. This module is
 * the actions' shape and their templates; it is pure (no I/O).
 *
 * A template's placeholders:
 *   {subject.<column>}  a column of the subject row, captured before the deletes (subject.capture)
 *   {row.<column>}      a column of a for_each row (wipe and cleanup policies: the rows before they go)
 *   {params.<name>}     a param of the policy, as given
 *   ${VAR}              an environment variable, read by the worker at run time; only its name is
 *                       ever stored, never its value
 *   ${VAR:-default}     the same, with the text after :- when VAR is unset or empty (a base URL
 *                       such as ${CLERK_API_URL:-https://api.clerk.com}; never a secret)
 * Braces around anything that is not a name or a dotted name ({}, code, JSON) are plain text.
 */
import { didYouMean } from '../validate/didYouMean.js';

export type ActionKind = 'http' | 'redis' | 'files' | 'command';
export const ACTION_KINDS: readonly ActionKind[] = ['http', 'redis', 'files', 'command'];

export interface HttpAction {
  readonly kind: 'http';
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Status codes that count as done (404: already gone). */
  readonly ok: readonly number[];
}
export interface RedisAction {
  readonly kind: 'redis';
  readonly url: string;
  readonly del: readonly string[];
  /** SCAN MATCH patterns whose keys are UNLINKed. */
  readonly unlink: readonly string[];
}
export interface FilesAction {
  readonly kind: 'files';
  readonly root: string;
  readonly remove: readonly string[];
}
export interface CommandAction {
  readonly kind: 'command';
  readonly argv: readonly string[];
}
export type ActionSpec = HttpAction | RedisAction | FilesAction | CommandAction;

/** One entry of after_commit: the action, and the rows it runs for. */
export interface AfterCommitAction {
  /** 1-based, in the policy's order. */
  readonly action: number;
  readonly spec: ActionSpec;
  /** A purge: once per subject row (subject.capture). Otherwise once per for_each row, or once per run. */
  readonly forEach?: { readonly table: { readonly schema: string; readonly name: string }; readonly capture: readonly string[] };
  /** `if: <flag>`: queued only when the flag is set (the run's value, else its default). */
  readonly flag?: string;
}

export type Placeholder =
  | { readonly kind: 'subject' | 'row' | 'params'; readonly name: string; readonly text: string }
  | { readonly kind: 'env'; readonly name: string; readonly text: string; readonly fallback?: string };

export type TemplatePart = string | Placeholder;

const TOKEN = /\$\{([^}]*)\}|\{([^}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A template split at its placeholders, or the problem with one of them. */
export function parseTemplate(text: string): { ok: true; parts: TemplatePart[] } | { ok: false; message: string } {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    if (m.index! > last) parts.push(text.slice(last, m.index));
    last = m.index! + m[0].length;
    if (m[1] !== undefined) {
      const env = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/.exec(m[1]);
      if (!env) return { ok: false, message: `"${m[0]}" is not an environment variable (\${NAME} or \${NAME:-default}: letters, digits, _)` };
      parts.push({ kind: 'env', name: env[1]!, text: m[0], ...(env[2] !== undefined ? { fallback: env[2] } : {}) });
      continue;
    }
    // Only what looks like a placeholder is one: braces around anything else ({}, code, JSON) are text.
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]*)*$/.test(m[2]!)) {
      parts.push(m[0]);
      continue;
    }
    const [ns, name, ...rest] = m[2]!.split('.');
    if ((ns === 'subject' || ns === 'row' || ns === 'params') && name && NAME.test(name) && !rest.length) {
      parts.push({ kind: ns, name, text: m[0] });
    } else {
      const near = ns && name && !rest.length ? didYouMean(ns, ['subject', 'row', 'params']) : undefined;
      const hint = near ? `did you mean {${near}.${name}}?` : 'use {subject.<column>}, {row.<column>}, {params.<name>} or ${ENV_VAR}';
      return { ok: false, message: `unknown placeholder "${m[0]}" (${hint})` };
    }
  }
  if (last < text.length) parts.push(text.slice(last));
  return { ok: true, parts };
}

/** Every template string of an action, with where it sits under the action (for messages). */
export function templatesOf(spec: ActionSpec): { path: (string | number)[]; text: string }[] {
  switch (spec.kind) {
    case 'http':
      return [{ path: ['url'], text: spec.url }, ...Object.entries(spec.headers).map(([h, v]) => ({ path: ['headers', h], text: v }))];
    case 'redis':
      return [{ path: ['url'], text: spec.url }, ...spec.del.map((t, i) => ({ path: ['del', i], text: t })), ...spec.unlink.map((t, i) => ({ path: ['unlink', i], text: t }))];
    case 'files':
      return [{ path: ['root'], text: spec.root }, ...spec.remove.map((t, i) => ({ path: ['remove', i], text: t }))];
    case 'command':
      return spec.argv.map((t, i) => ({ path: ['argv', i], text: t }));
  }
}

export function placeholdersOf(spec: ActionSpec): Placeholder[] {
  return templatesOf(spec).flatMap((t) => {
    const parsed = parseTemplate(t.text);
    return parsed.ok ? parsed.parts.filter((p): p is Placeholder => typeof p !== 'string') : [];
  });
}

/** The environment variables an action reads at run time. */
export function envNames(spec: ActionSpec): string[] {
  return [...new Set(placeholdersOf(spec).filter((p) => p.kind === 'env').map((p) => p.name))];
}

/** Those it cannot run without: read somewhere without a ${VAR:-default}. */
export function requiredEnvNames(spec: ActionSpec): string[] {
  return [...new Set(placeholdersOf(spec).filter((p) => p.kind === 'env' && p.fallback === undefined).map((p) => p.name))];
}

/**
 * A files path template that could name something outside its root whatever the values are:
 * absolute, or with a `..` segment. (A value with a `/` or `..` is refused when the job runs,
 * and so is a path that resolves through a symlink to outside the root.)
 */
export function escapesRoot(template: string): string | undefined {
  if (template.startsWith('/') || /^[A-Za-z]:[\\/]/.test(template) || template.startsWith('${')) return 'is absolute (or starts with an environment variable); paths are relative to root';
  if (template.split(/[\\/]/).some((seg) => seg === '..')) return 'has a ".." segment, which can leave the root';
  if (template.split(/[\\/]/).every((seg) => seg === '' || seg === '.')) return 'names the root itself; name what to remove under it';
  return undefined;
}

/** One line for `plan` and the generated file's comment: what the action does, templates as written. */
export function describeAction(spec: ActionSpec): string {
  switch (spec.kind) {
    case 'http':
      return `http ${spec.method} ${spec.url} (done on ${spec.ok.join(', ')})`;
    case 'redis':
      return `redis ${[...spec.del.map((k) => `DEL ${k}`), ...spec.unlink.map((k) => `UNLINK ${k}`)].join(', ')} on ${spec.url}`;
    case 'files':
      return `files remove ${spec.remove.join(', ')} under ${spec.root}`;
    case 'command':
      return `command ${JSON.stringify(spec.argv)}`;
  }
}
