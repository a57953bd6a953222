import type { ColumnKind, IdentifyingValue, MatchKind } from './types.js';

/**
 * What a cell that passed the scan's filter really holds: for each searched value, the most
 * specific way it matches, or nothing (the filter is a superset). Pure.
 *
 *   exact             the text equals the value
 *   case-insensitive  it equals it ignoring case (emails; other values found through the substring filter)
 *   json              a JSON string or number, at any key and depth, equals the value (ignoring case for emails)
 *   array-element     an element of a text array equals it (ignoring case for emails)
 *   substring         the value occurs inside the text, a JSON string or key, or an array element
 */
export interface Match {
  readonly value: IdentifyingValue;
  readonly kind: MatchKind;
  /** JSON only: where, as segments (a number stands for any array index). */
  readonly path: readonly (string | number)[] | null;
}

export function classifyCell(kind: ColumnKind, cell: string, values: readonly IdentifyingValue[]): Match[] {
  switch (kind) {
    case 'text':
      return values.flatMap((v) => {
        const m = textMatch(cell, v);
        return m ? [{ value: v, kind: m === 'equal' ? 'exact' : m, path: null }] : [];
      });
    case 'array': {
      const items = parse(cell);
      if (!Array.isArray(items)) return [];
      return values.flatMap((v) => {
        const found = items.map((e) => (typeof e === 'string' ? textMatch(e, v) : undefined)).filter((m) => m !== undefined);
        if (!found.length) return [];
        return [{ value: v, kind: found.some((m) => m !== 'substring') ? 'array-element' : 'substring', path: null }];
      });
    }
    case 'json':
    case 'jsonb': {
      const doc = parse(cell);
      return values.flatMap((v) => {
        const m = jsonMatch(doc, v, []);
        return m ? [{ value: v, ...m }] : [];
      });
    }
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function textMatch(cell: string, v: IdentifyingValue): 'equal' | 'case-insensitive' | 'substring' | undefined {
  if (cell === v.value) return 'equal';
  const lower = cell.toLowerCase();
  const value = v.value.toLowerCase();
  // Case is ignored for emails always, for other values only where the substring filter looked.
  if ((v.email || v.substring) && lower === value) return 'case-insensitive';
  if (v.substring && lower.includes(value)) return 'substring';
  return undefined;
}

/** The first equal scalar at any depth (a json match); else the first string or key containing it. */
function jsonMatch(node: unknown, v: IdentifyingValue, path: (string | number)[]): { kind: MatchKind; path: (string | number)[] } | undefined {
  let weak: { kind: MatchKind; path: (string | number)[] } | undefined;
  const visit = (n: unknown, at: (string | number)[]): { kind: MatchKind; path: (string | number)[] } | undefined => {
    if (typeof n === 'string') {
      const m = textMatch(n, v);
      if (m === 'equal' || m === 'case-insensitive') return { kind: 'json', path: at };
      if (m === 'substring') weak ??= { kind: 'substring', path: at };
      return undefined;
    }
    if (typeof n === 'number') return String(n) === v.value || (/^[+-]?\d+(\.\d+)?$/.test(v.value) && Number(v.value) === n) ? { kind: 'json', path: at } : undefined;
    if (Array.isArray(n)) {
      for (const item of n) {
        const found = visit(item, [...at, -1]);
        if (found) return found;
      }
      return undefined;
    }
    if (n && typeof n === 'object') {
      for (const [key, item] of Object.entries(n)) {
        if (v.substring && key.toLowerCase().includes(v.value.toLowerCase())) weak ??= { kind: 'substring', path: [...at, key] };
        const found = visit(item, [...at, key]);
        if (found) return found;
      }
    }
    return undefined;
  };
  return visit(node, path) ?? weak;
}

/** `accountId`, `owner.contacts[*].email`; keys that are not plain words quoted as JSON strings. */
export function pathText(path: readonly (string | number)[]): string {
  return path
    .map((s, i) => (typeof s === 'number' ? '[*]' : /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? `${i ? '.' : ''}${s}` : `${i ? '.' : ''}${JSON.stringify(s)}`))
    .join('');
}
