import type { Catalog, ForeignKey } from '../catalog/catalog.js';
import { quoteIdent } from '../sql/quote.js';
import { cmp } from '../graph/graph.js';
import type { Dependencies } from '../graph/purge.js';
import type { KeySets } from './sets.js';

/**
 * The where clauses of a discovered policy: each table's rows to delete, written as the foreign
 * key path back to :subject. A table with a set (see sets.ts) is written once, in its set, and
 * read as :name everywhere else; the few paths without one are subqueries, and a step runs
 * before the steps of every table it refers to, so each reads parent rows that are all still
 * there. Needs loadParser() (quoteIdent).
 */
export class WhereClauses {
  private readonly memo = new Map<string, readonly string[]>();

  constructor(
    private readonly catalog: Catalog,
    private readonly deps: Dependencies,
    private readonly key: string,
    private readonly sets: KeySets,
  ) {}

  /**
   * A step's where: the rows of its set when it has one (and its key cannot be NULL, which a
   * set cannot name), else its own terms.
   */
  stepTerms(table: string): readonly string[] {
    const set = this.sets.tables.get(table);
    if (!set || this.nullable(table, set.key)) return this.terms(table);
    return [`${tuple(set.key.map(quoteIdent))} IN :${set.name}`];
  }

  /** The rows of `table` to delete, as OR terms (one per foreign-key path into the purged rows). */
  terms(table: string): readonly string[] {
    const cached = this.memo.get(table);
    if (cached) return cached;
    const base =
      table === this.deps.root.qualified
        ? [`${quoteIdent(this.key)} IN :subject`]
        : this.parents(table).map((fk) => this.referencing(fk));
    const self = this.deps.selfReferences.get(table);
    const terms = self ? this.withDescendants(table, base, self) : base;
    this.memo.set(table, terms);
    return terms;
  }

  /** The followed keys from `table` to other tables being purged, in the order of its terms. */
  parents(table: string): ForeignKey[] {
    return [...(this.deps.parents.get(table) ?? [])].sort((a, b) => this.nearest(a, b));
  }

  condition(table: string): string {
    return this.stepTerms(table).join(' OR ');
  }

  /** Rows of fk.table whose key points at a row of fk.references that is being deleted. */
  referencing(fk: ForeignKey): string {
    const parent = fk.references;
    const columns = tuple(fk.columns.map(quoteIdent));
    const direct = parent === this.deps.root.qualified && !this.deps.selfReferences.has(parent) && fk.referencedColumns.length === 1 && fk.referencedColumns[0] === this.key;
    if (direct) return `${columns} IN :subject`;
    const set = this.sets.tables.get(parent);
    if (set) return `${columns} IN :${set.name}`;
    return `${columns} IN (SELECT ${fk.referencedColumns.map(quoteIdent).join(', ')} FROM ${parent} WHERE ${this.condition(parent)})`;
  }

  /**
   * A broken key's precondition: rows still pointing through it at a deleted row when that row's
   * step runs. Rows its own table loses in an earlier step, or in the same statement, are not counted.
   */
  blocking(fk: ForeignKey): string {
    const position = (t: string) => this.deps.order.findIndex((o) => o.qualified === t);
    const own = position(fk.table);
    const goneFirst = own >= 0 && own <= position(fk.references);
    return `${this.referencing(fk)}${goneFirst ? ` AND (${this.condition(fk.table)}) IS NOT TRUE` : ''}`;
  }

  /**
   * Followed self-references: the base rows and, recursively, every row pointing at one of them.
   * Rows are found again by the referenced key; base rows whose key may be NULL are kept by the
   * base terms themselves (a NULL key matches no IN).
   */
  private withDescendants(table: string, base: readonly string[], self: readonly ForeignKey[]): string[] {
    const carried = [...new Set(self.flatMap((fk) => fk.referencedColumns))];
    const identity = self[0]!.referencedColumns;
    const join = self
      .map((fk) => `${tuple(fk.columns.map((c) => `child.${quoteIdent(c)}`))} = ${tuple(fk.referencedColumns.map((c) => `reached.${quoteIdent(c)}`))}`)
      .join(' OR ');
    const recursive =
      `${tuple(identity.map(quoteIdent))} IN (WITH RECURSIVE reached AS (` +
      `SELECT ${carried.map(quoteIdent).join(', ')} FROM ${table} WHERE ${base.join(' OR ')}` +
      ` UNION SELECT ${carried.map((c) => `child.${quoteIdent(c)}`).join(', ')} FROM ${table} AS child JOIN reached ON ${join}` +
      `) SELECT ${identity.map(quoteIdent).join(', ')} FROM reached)`;
    return this.nullable(table, identity) ? [...base, recursive] : [recursive];
  }

  private nullable(table: string, key: readonly string[]): boolean {
    const columns = this.catalog.tables.get(table)?.columns ?? [];
    return key.some((c) => columns.find((col) => col.name === c)?.nullable !== false);
  }

  /** Paths from the subject first, then by table and key name. */
  private nearest(a: ForeignKey, b: ForeignKey): number {
    const depth = (fk: ForeignKey) => this.deps.depth.get(fk.references) ?? 0;
    return depth(a) - depth(b) || cmp(a.references, b.references) || cmp(a.name, b.name);
  }
}

export function tuple(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `(${items.join(', ')})`;
}
