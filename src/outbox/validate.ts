import type { PathSegment } from '../load/loadPolicy.js';
import type { ParamDecl, PolicyKind, TableName } from '../policy.js';
import { didYouMean } from '../validate/didYouMean.js';
import { ACTION_KINDS, escapesRoot, parseTemplate, templatesOf, type ActionSpec, type AfterCommitAction } from './spec.js';

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * after_commit: the shape is the JSON schema's (unknown kinds and arguments are reported there,
 * with did-you-mean); here what the schema cannot say: each placeholder names a captured column
 * or a param, and a files path cannot leave its root.
 */
export function afterCommitOf(
  raw: Raw,
  kind: PolicyKind,
  params: readonly ParamDecl[],
  capture: readonly string[],
  report: (path: readonly PathSegment[], message: string, key?: boolean) => void,
  table: (path: readonly PathSegment[], value: unknown) => TableName,
  flagOf: (path: readonly PathSegment[], value: unknown) => string | undefined = () => undefined,
): AfterCommitAction[] {
  const out: AfterCommitAction[] = [];
  if (raw['after_commit'] === undefined) return out;
  if (kind === 'check') {
    report(['after_commit'], 'a check policy changes nothing, so it has nothing to do after COMMIT', true);
    return out;
  }
  const list = Array.isArray(raw['after_commit']) ? raw['after_commit'] : [];
  list.forEach((entry, i) => {
    if (!isObject(entry)) return;
    const kinds = Object.keys(entry).filter((k) => k !== 'for_each' && k !== 'if');
    const actionKind = ACTION_KINDS.find((k) => k === kinds[0]);
    if (kinds.length > 1 && kinds.every((k) => ACTION_KINDS.some((a) => a === k))) report(['after_commit', i], `has ${kinds.join(' and ')}: one action per entry`);
    if (kinds.length === 0) report(['after_commit', i], `needs one of ${ACTION_KINDS.join(', ')}`);
    if (kinds.length !== 1 || !actionKind || !isObject(entry[actionKind])) return; // otherwise the schema says what is wrong
    const a = entry[actionKind] as Raw;
    const spec = specOf(actionKind, a);
    const base: PathSegment[] = ['after_commit', i, actionKind];
    let forEach: AfterCommitAction['forEach'];
    if (isObject(entry['for_each'])) {
      if (kind === 'purge') report(['after_commit', i, 'for_each'], 'a purge runs its actions once per subject (subject.capture); for_each is for wipe and cleanup policies', true);
      forEach = { table: table(['after_commit', i, 'for_each', 'table'], entry['for_each']['table']), capture: strings(entry['for_each']['capture']) };
    }
    const flag = entry['if'] === undefined ? undefined : flagOf(['after_commit', i, 'if'], entry['if']);
    const columns = forEach ? forEach.capture : kind === 'purge' ? capture : [];
    for (const t of templatesOf(spec)) {
      const path = [...base, ...t.path];
      const parsed = parseTemplate(t.text);
      if (!parsed.ok) {
        report(path, parsed.message);
        continue;
      }
      for (const p of parsed.parts) {
        if (typeof p === 'string' || p.kind === 'env') continue;
        if (p.kind === 'params') {
          if (!params.some((d) => d.name === p.name)) {
            const hint = didYouMean(p.name, params.map((d) => d.name));
            report(path, `unknown placeholder ${p.text}: no param "${p.name}"${hint ? ` (did you mean {params.${hint}}?)` : ''}`);
          }
          continue;
        }
        const own = forEach ? 'row' : 'subject';
        if (p.kind !== own) {
          report(path, `unknown placeholder ${p.text}: ${forEach ? 'a for_each action reads {row.<column>}' : kind === 'purge' ? 'a purge reads {subject.<column>}' : 'this policy has no subject: add for_each: { table, capture } to run the action per row'}`);
          continue;
        }
        if (!columns.includes(p.name)) {
          const hint = didYouMean(p.name, columns);
          const where = forEach ? 'after_commit[].for_each.capture' : 'subject.capture';
          report(path, `unknown placeholder ${p.text}: "${p.name}" is not in ${where} (${columns.length ? columns.join(', ') : 'empty'})${hint ? `; did you mean {${own}.${hint}}?` : ''}`);
        }
      }
      if (spec.kind === 'files' && t.path[0] === 'remove') {
        const why = escapesRoot(t.text);
        if (why) report(path, `"${t.text}" ${why}`);
      }
    }
    out.push({ action: i + 1, spec, ...(forEach ? { forEach } : {}), ...(flag ? { flag } : {}) });
  });
  return out;
}

function specOf(kind: ActionSpec['kind'], a: Raw): ActionSpec {
  switch (kind) {
    case 'http':
      return {
        kind,
        method: typeof a['method'] === 'string' ? a['method'].toUpperCase() : 'DELETE',
        url: String(a['url'] ?? ''),
        headers: Object.fromEntries(Object.entries(isObject(a['headers']) ? a['headers'] : {}).filter((e): e is [string, string] => typeof e[1] === 'string')),
        ok: Array.isArray(a['ok']) ? a['ok'].filter((x): x is number => typeof x === 'number') : [200, 204, 404],
      };
    case 'redis':
      return { kind, url: String(a['url'] ?? ''), del: strings(a['del']), unlink: strings(a['unlink']) };
    case 'files':
      return { kind, root: String(a['root'] ?? ''), remove: strings(a['remove']) };
    case 'command':
      return { kind, argv: strings(a['argv']) };
  }
}
