import { parse } from 'yaml';

/**
 * The few pieces of YAML text discover writes by hand (it writes the file line by line so that
 * comments sit exactly where a reviewer needs them). Scalars are written plain when the yaml
 * parser reads them back as the same string, else single-quoted, else double-quoted.
 */
export function scalar(value: string, context: 'block' | 'flow' = 'block'): string {
  if (value !== '' && !/^\s|\s$/.test(value) && readsBackAs(value, value, context)) return value;
  if (!/[\u0000-\u001f\u007f]/.test(value)) return `'${value.replaceAll("'", "''")}'`;
  return JSON.stringify(value); // a YAML double-quoted scalar is a JSON string
}

function readsBackAs(text: string, value: string, context: 'block' | 'flow'): boolean {
  try {
    const doc = parse(context === 'flow' ? `{ k: ${text} }` : `k: ${text}`, { uniqueKeys: true }) as unknown;
    return typeof doc === 'object' && doc !== null && (doc as Record<string, unknown>)['k'] === value;
  } catch {
    return false;
  }
}

/**
 * `key: <sql>`: on one line when it fits in `width` columns, else as a literal block with one
 * line per part (for a where clause, one OR term a line).
 */
export function sqlEntry(key: string, oneLine: string, lines: readonly string[], indent: string, width = 100): string[] {
  if (lines.length === 1 || indent.length + key.length + 2 + scalar(oneLine).length <= width) return [`${indent}${key}: ${scalar(oneLine)}`];
  return [`${indent}${key}: |-`, ...lines.map((l) => `${indent}  ${l}`)];
}

/** A where clause's entry: its OR terms. */
export function whereEntry(terms: readonly string[], indent: string): string[] {
  return sqlEntry('where', terms.join(' OR '), terms.map((t, i) => (i ? `OR ${t}` : t)), indent);
}

/** `# ...` lines, words wrapped at `width` columns; a paragraph indented by two spaces is code, kept as is. */
export function comment(text: string, indent: string, width = 100): string[] {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    if (paragraph.startsWith('  ')) {
      out.push(`${indent}#${paragraph}`); // code: never wrapped, so that it can be copied
      continue;
    }
    let line = '';
    for (const word of paragraph.split(' ')) {
      if (line && indent.length + 2 + line.length + 1 + word.length > width) {
        out.push(`${indent}# ${line}`);
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    out.push(line ? `${indent}# ${line}` : `${indent}#`);
  }
  return out;
}
