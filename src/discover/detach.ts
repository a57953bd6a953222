import type { Catalog, ForeignKey } from '../catalog/catalog.js';
import type { BrokenKey, Dependencies } from '../graph/purge.js';
import { quoteIdent } from '../sql/quote.js';
import { tuple, type WhereClauses } from './where.js';
import { comment, scalar, whereEntry } from './yaml.js';

/**
 * The detach steps of a discovered policy: before the rows of a table go, the rows that point at
 * them and must stay get their foreign key set NULL (or to its default) by a step of their own,
 * inside the same transaction, so that every such update is counted and reported and nothing is
 * left to a hand-run UPDATE or to the database's ON DELETE action:
 *
 *   a nullable key that discover does not follow because it closes a cycle (or is a nullable
 *   self-reference): its rows would otherwise block the delete;
 *   an ON DELETE SET NULL / SET DEFAULT key: the database would detach the rows itself; the
 *   step says so explicitly, and the table needs no cascades: entry.
 *
 * A cycle of NOT NULL keys cannot be detached: it stays a precondition (discover.ts).
 */
export interface DetachKey {
  readonly fk: ForeignKey;
  readonly why: 'cycle' | 'self-reference' | 'set null' | 'set default';
  /** The tables of the cycle (a broken cycle key). */
  readonly cycle?: readonly string[];
}

/** The keys to detach before `table`'s step, in a stable order: broken keys first, then SET NULL / SET DEFAULT. */
export function detachKeys(deps: Dependencies, table: string): DetachKey[] {
  const broken = deps.broken
    .filter((b: BrokenKey) => b.nullable && b.fk.references === table)
    .map((b): DetachKey => ({ fk: b.fk, why: b.cycle.length ? 'cycle' : 'self-reference', cycle: b.cycle }));
  const detached = (deps.detached.get(table) ?? []).map((fk): DetachKey => ({ fk, why: fk.onDelete === 'set default' ? 'set default' : 'set null' }));
  return [...broken, ...detached];
}

/** The YAML lines of one detach step (with its comment), indented as a step of the list. */
export function detachStep(catalog: Catalog, where: WhereClauses, key: DetachKey, ref: (table: string) => string): string[] {
  const fk = key.fk;
  const columns = catalog.tables.get(fk.table)?.columns ?? [];
  // MATCH SIMPLE: one NULL column is enough for the row to reference nothing; the NOT NULL ones stay.
  const nullable = fk.columns.filter((c) => columns.find((col) => col.name === c)?.nullable !== false);
  const cols = key.why === 'set default' ? fk.columns : nullable;
  const listed = tuple(fk.columns.map(quoteIdent));
  const notes: Record<DetachKey['why'], string> = {
    cycle: `${fk.table}.${listed} (nullable) points back at ${fk.references}, closing a cycle through ${(key.cycle ?? []).join(', ')}: following it would purge rows that are not the subject's, so those rows are detached instead, before their ${fk.references} rows go.`,
    'self-reference': `${fk.table}.${listed} (nullable) references its own table: following it would purge every row pointing at a removed row, and every row pointing at those; they are detached instead, before the delete.`,
    'set null': `${fk.table}.${listed} is ON DELETE SET NULL: the rows pointing at removed ${fk.references} rows stay; this step sets it NULL itself, so that each update is counted and reported (and no cascades: entry is needed).`,
    'set default': `${fk.table}.${listed} is ON DELETE SET DEFAULT: the rows pointing at removed ${fk.references} rows stay; this step sets it to its default itself, so that each update is counted and reported.`,
  };
  const entries = cols.map((c) => (key.why === 'set default' ? `{ column: ${scalar(c, 'flow')}, to: default }` : scalar(c, 'flow')));
  return [
    '',
    ...comment(notes[key.why], '  '),
    `  - table: ${scalar(ref(fk.table))}`,
    `    description: ${scalar(`Keeps the ${fk.table} rows that point at removed ${fk.references} rows through ${listed}, without the link.`)}`,
    `    detach: [${entries.join(', ')}]`,
    ...whereEntry([where.blocking(fk)], '    '),
  ];
}
