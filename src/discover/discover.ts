import type { Catalog, ForeignKey, Table } from '../catalog/catalog.js';
import { UsageError } from '../core/errors.js';
import { quoteIdent } from '../sql/quote.js';
import { dependencies, type BrokenKey, type Dependencies } from '../graph/purge.js';
import { paramNameOf, paramTypeOf, policyNameOf, resolveColumn, tableOption } from './resolve.js';
import { keySets, type KeySets, type OwnedParent } from './sets.js';
import { comment, scalar, sqlEntry, whereEntry } from './yaml.js';
import { tuple, WhereClauses } from './where.js';
import { detachKeys, detachStep } from './detach.js';

export interface DiscoverOptions {
  /** `schema.table`, or a bare name in `schema`. Names as the database spells them. */
  readonly table: string;
  /** The subject key: the column the purge finds rows by. */
  readonly key: string;
  /** The policy's name (generated/<name>.sql). */
  readonly name: string;
  /** Schema of a bare `table` (default public). */
  readonly schema?: string;
  /**
   * Where editors find the policy schema, relative to the policy file (the yaml-language-server
   * comment); default ../schema/policy.schema.json. The command passes the installed package's.
   */
  readonly schemaRef?: string;
}

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/**
 * A purge policy skeleton, as YAML text, for removing rows of one table and everything that
 * depends on them by foreign key (see docs/DISCOVER.md). Pure: the same catalog and options give
 * the same bytes. Needs loadParser() first (identifiers are quoted like quote_ident).
 */
export function discover(catalog: Catalog, options: DiscoverOptions): string {
  const root = tableOption(catalog, options.table, options.schema);
  const keyColumn = resolveColumn(root, options.key);
  if (!NAME.test(options.name) || options.name.length > 100) {
    throw new UsageError(`--name ${options.name}: a policy name is lowercase letters, digits and -, starting with a letter or digit (at most 100)`);
  }
  const deps = dependencies(catalog, root.qualified);
  return new Writer(catalog, deps, options, keyColumn.type).text();
}

export { policyNameOf };

class Writer {
  private readonly where: WhereClauses;
  private readonly schema: string;
  private readonly lines: string[] = [];
  private readonly preconditions: readonly { broken: BrokenKey; name: string }[];
  private readonly sets: KeySets;

  constructor(
    private readonly catalog: Catalog,
    private readonly deps: Dependencies,
    private readonly options: DiscoverOptions,
    private readonly keyType: string,
  ) {
    this.sets = keySets(catalog, deps, options.key, [paramNameOf(options.key)]);
    this.where = new WhereClauses(catalog, deps, options.key, this.sets);
    this.schema = deps.root.schema;
    // A nullable key is detached by a step (detach.ts); only a cycle of NOT NULL keys stays a precondition.
    this.preconditions = deps.broken.filter((broken) => !broken.nullable).map((broken) => ({
      broken,
      name: `no ${broken.fk.table} row points at a removed ${broken.fk.references} row through ${columnList(broken.fk.columns)}`,
    }));
  }

  text(): string {
    this.header();
    this.subject();
    this.keySets();
    this.steps();
    this.expectations();
    this.guard();
    return `${this.lines.join('\n')}\n`;
  }

  private add(...lines: string[]): void {
    this.lines.push(...lines);
  }

  private header(): void {
    const root = this.deps.root;
    this.add(`# yaml-language-server: $schema=${this.options.schemaRef ?? '../schema/policy.schema.json'}`);
    this.add(
      ...comment(
        `Written by \`purgekit discover --table ${root.schema}.${root.name} --key ${this.options.key}\` from the live catalog: ` +
          `a skeleton to review, not a finished policy. It removes the ${root.qualified} rows found by ${this.options.key} and, ` +
          'children first, every row that depends on them through foreign keys. Before relying on it, add preserve rules ' +
          'for rows that must never go and expectations, and narrow the guard to your databases.',
        '',
      ),
      'version: 1',
      `name: ${this.options.name}`,
      'kind: purge',
      `description: ${scalar(`Remove ${root.qualified} rows found by ${this.options.key} and every row that depends on them by foreign key.`)}`,
      `schema: ${scalar(this.schema)}`,
    );
  }

  private subject(): void {
    const key = this.options.key;
    const param = paramNameOf(key);
    const type = paramTypeOf(this.keyType);
    const description = `${this.deps.root.qualified}.${quoteIdent(key)} of the rows to purge`;
    this.add('', 'params:');
    if (!type) this.add(...comment(`${key} is ${this.keyType}, which is not a param type: the value is given as text and cast.`, '  '));
    this.add(`  ${param}: { type: ${type ?? 'text'}, description: ${scalar(description, 'flow')} }`);
    const optIn = this.sets.owned.filter((o) => !o.oneToOne);
    if (optIn.length) {
      this.add(
        '',
        ...comment(
          'Tables only the purged rows point at, but not 1:1: they may be shared lookup tables (a staff list, countries). ' +
            'Their unreferenced rows are removed only when the flag is given (--remove-unreferenced-...) or its default set true.',
          '',
        ),
        'flags:',
      );
      for (const owned of optIn) {
        const text = `Also remove the ${owned.table.qualified} rows the purged rows pointed at that nothing references any more`;
        this.add(`  ${ownedFlag(owned)}: { default: false, description: ${scalar(text, 'flow')} }`);
      }
    }
    this.add('', 'subject:');
    this.add(`  table: ${scalar(this.ref(this.deps.root))}`, `  key: ${scalar(key)}`, '  lookup:', `    - by: [${param}]`);
    const lookup = type ? `${quoteIdent(key)} = :${param}` : `${quoteIdent(key)} = CAST(:${param} AS ${this.keyType})`;
    this.add(`      where: ${scalar(lookup)}`);
    const unique = this.deps.root.indexes.some((i) => i.unique && !i.partial && i.columns.length === 1 && i.columns[0] === key);
    if (!unique) {
      this.add(...comment(`${key} is not unique: when several rows match, the run fails unless max is raised or --force-multi is given.`, '  '));
    }
  }

  private steps(): void {
    this.add(
      '',
      ...comment(
        'Children first: each step runs before the steps of the tables it references, so the rows its where ' +
          'reads are still there. Tables that ON DELETE CASCADE would empty are deleted explicitly as well, so ' +
          'that every count is exact and reported, max_rows can be set per table, and the order holds even if ' +
          'a key stops cascading. Rows that stay but point at removed rows (ON DELETE SET NULL and SET DEFAULT ' +
          'references, and the nullable keys discover does not follow because they close a cycle) are detached by ' +
          'detach steps just before the rows they point at go, so that every update is counted and reported too.',
        '',
      ),
      'steps:',
    );
    for (const table of this.deps.order) {
      for (const key of detachKeys(this.deps, table.qualified)) {
        this.add(...detachStep(this.catalog, this.where, key, (t) => this.ref(this.catalog.tables.get(t)!)));
      }
      this.step(table);
    }
    for (const owned of this.sets.owned) this.ownedStep(owned);
  }

  private keySets(): void {
    const tables = [...this.sets.tables.values()];
    const captures = this.sets.owned.flatMap((o) => o.captures.map((c) => ({ owned: o, capture: c })));
    if (!tables.length && !captures.length) return;
    this.add(
      '',
      ...comment(
        'Key sets, captured in this order after the subject and before any step, and locked like it: each names ' +
          'the keys of rows being removed once, and later SQL reads it as :name instead of repeating the path.',
        '',
      ),
      'sets:',
    );
    for (const set of tables) {
      const key = set.key.length === 1 ? scalar(set.key[0]!) : `[${set.key.map((k) => scalar(k, 'flow')).join(', ')}]`;
      this.add(`  ${set.name}:`, `    table: ${scalar(this.ref(set.table))}`, `    key: ${key}`);
      this.add(...whereEntry(this.where.terms(set.table.qualified), '    '));
    }
    for (const { owned, capture } of captures) {
      const fk = capture.fk;
      const from = this.catalog.tables.get(fk.table)!;
      this.add(
        `  ${capture.name}:`,
        `    description: ${scalar(`The ${owned.table.qualified} rows that removed ${fk.table} rows point at, remembered before they go.`)}`,
        `    table: ${scalar(this.ref(from))}`,
        `    key: ${fk.columns.length === 1 ? scalar(fk.columns[0]!) : `[${fk.columns.map((k) => scalar(k, 'flow')).join(', ')}]`}`,
      );
      this.add(...whereEntry(this.where.stepTerms(fk.table), '    '));
    }
  }

  /** The rows of an owned parent that removed rows pointed at, once nothing references them. */
  private ownedStep(owned: OwnedParent): void {
    const table = owned.table;
    const notes: string[] = [];
    const via = owned.captures.map((c) => `${c.fk.table}.${columnList(c.fk.columns)}`).join(', ');
    if (!owned.oneToOne) {
      notes.push(
        `${table.qualified} is referenced only from tables this policy purges (${via}), but not 1:1: it may be a shared ` +
          `lookup table, so this step runs only with flag ${ownedFlag(owned)}. If it is one, delete this step and its sets.`,
      );
    }
    const alias = 'r';
    const target = quoteIdent(table.name);
    const unreferenced = owned.referencedBy.map((fk) => {
      const join = fk.columns.map((c, i) => `${alias}.${quoteIdent(c)} = ${target}.${quoteIdent(fk.referencedColumns[i]!)}`).join(' AND ');
      return `NOT EXISTS (SELECT FROM ${fk.table} AS ${alias} WHERE ${join})`;
    });
    const pointed = owned.captures.map((c) => `${tuple(c.fk.referencedColumns.map(quoteIdent))} IN :${c.name}`);
    const first = pointed.length === 1 ? pointed[0]! : `(${pointed.join(' OR ')})`;
    this.add('');
    for (const note of notes) this.add(...comment(note, '  '));
    this.add(`  - table: ${scalar(this.ref(table))}`);
    const kind = owned.oneToOne ? 'one per referencing row' : 'referenced only from purged tables';
    this.add(`    description: ${scalar(`Rows that removed rows pointed at through ${via} (${kind}), once no foreign key points at them any more.`)}`);
    this.add(...sqlEntry('where', [first, ...unreferenced].join(' AND '), [first, ...unreferenced.map((u) => `AND ${u}`)], '    '));
    if (!owned.oneToOne) this.add(`    if: ${ownedFlag(owned)}`);
  }

  private step(table: Table): void {
    const isRoot = table.qualified === this.deps.root.qualified;
    const parents = this.where.parents(table.qualified);
    const self = this.deps.selfReferences.get(table.qualified) ?? [];
    const notes: string[] = [];
    const nullable = parents.filter((p) => p.nullable).map((fk) => columnList(fk.columns));
    if (nullable.length) {
      const one = nullable.length === 1;
      notes.push(
        `${nullable.join(' and ')} may be NULL: to keep rows that reach the purge only through ${one ? 'it' : 'one of them'}, ` +
          `detach ${one ? 'it' : 'that one'} in a step before this one (detach: [...]) and take ${one ? 'that' : 'its'} term out of the where.`,
      );
    }
    for (const fk of [...parents, ...self].filter((p) => !p.indexed)) {
      // CREATE INDEX CONCURRENTLY cannot build a partitioned table's index; lint prints the statements.
      const fix = table.partitioned
        ? `Consider an index on (${fk.columns.map(quoteIdent).join(', ')}) of ${table.qualified} and each of its partitions (purgekit lint prints the statements).`
        : `Consider CREATE INDEX CONCURRENTLY ON ${table.qualified} (${fk.columns.map(quoteIdent).join(', ')});`;
      notes.push(`No index covers ${columnList(fk.columns)}: this step and the delete from ${fk.references} scan ${table.qualified}. ${fix}`);
    }
    if (table.partitioned) {
      const parts = table.partitions;
      const listed = parts.length > 4 ? `${parts.length} partitions (${parts[0]} to ${parts[parts.length - 1]})` : `partitions (${parts.join(', ')})`;
      notes.push(`Partitioned: the delete reaches its ${listed}.`);
    }
    this.preconditions.forEach(({ broken }, i) => {
      if (broken.fk.references !== table.qualified) return;
      const why = broken.cycle.length ? 'it closes a cycle' : 'a self-reference';
      notes.push(`${broken.fk.table}.${columnList(broken.fk.columns)} is not followed (${why}): see expect ${i + 1}, a precondition.`);
    });

    this.add('');
    for (const note of notes) this.add(...comment(note, '  '));
    this.add(`  - table: ${scalar(this.ref(table))}`);
    const description = isRoot
      ? `The subject: the ${table.qualified} rows found by ${this.options.key}.`
      : `References ${parents.map((fk) => `${fk.references} by ${columnList(fk.columns)}${action(fk)}`).join('; ')}.`;
    const recursive = self.length
      ? ` Rows pointing at a removed row through ${self.map((fk) => `${columnList(fk.columns)}${action(fk)}`).join(' or ')} (a self-reference) go in the same statement, recursively.`
      : '';
    this.add(`    description: ${scalar(description + recursive)}`);
    this.add(...whereEntry(this.where.stepTerms(table.qualified), '    '));
  }

  private expectations(): void {
    if (!this.preconditions.length) return;
    this.add(
      '',
      ...comment(
        'Preconditions, checked after the subject is found and before any step: a foreign key that discover does not ' +
          'follow must not point at a row being removed, or that row\'s step would fail. Each fails the run (PK004, ' +
          'nothing changed) while such rows remain.',
        '',
      ),
      'expect:',
    );
    this.preconditions.forEach(({ broken, name }, i) => {
      const fk = broken.fk;
      const condition = this.where.blocking(fk);
      this.add('', ...comment(`expect ${i + 1}: ${this.why(broken)}`, '  '));
      this.add(`  - name: ${scalar(name)}`, '    when: before');
      const query = `SELECT count(*) FROM ${fk.table} WHERE ${condition}`;
      this.add(...sqlEntry('query', query, [`SELECT count(*) FROM ${fk.table}`, `WHERE ${condition}`], '    '));
      this.add('    max: 0');
    });
  }

  /** Only a cycle of NOT NULL keys is a precondition: a nullable key is detached by a step (detach.ts). */
  private why(broken: BrokenKey): string {
    const fk = broken.fk;
    return (
      `${fk.table}.${columnList(fk.columns)} closes a cycle of NOT NULL foreign keys (${broken.cycle.join(', ')}): no order of DELETE statements ` +
      'can remove rows that point at each other around it (only DEFERRABLE constraints could). Review this by hand.'
    );
  }

  private guard(): void {
    this.add(
      '',
      ...comment('Where apply may run: globs on the database name. Name your own non-production databases.', ''),
      'guard:',
      '  databases: ["*_dev", "*_test"]',
      '  confirm: database',
    );
  }

  /** A table as a policy names it: bare in the policy's schema, else schema.name. */
  private ref(table: Table): string {
    if (table.name.includes('.') || table.schema.includes('.')) {
      throw new UsageError(`${table.qualified}: a policy cannot name a table or schema containing a dot (schema.name is split at the dot)`);
    }
    return table.schema === this.schema ? table.name : `${table.schema}.${table.name}`;
  }
}

/** The opt-in flag of an owned parent that is not 1:1. */
function ownedFlag(owned: OwnedParent): string {
  return `remove_unreferenced_${paramNameOf(owned.table.name)}`.slice(0, 63).replace(/_+$/, '');
}

function columnList(columns: readonly string[]): string {
  return tuple(columns.map(quoteIdent));
}

function action(fk: ForeignKey): string {
  return fk.onDelete === 'no action' ? '' : `, ON DELETE ${fk.onDelete.toUpperCase()}`;
}
