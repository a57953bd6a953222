import type { Expectation, FunctionName, KeySet, Policy, Preserve, SqlFragment, Step, TableName } from '../policy.js';
import { authorSql, needsCatalogCheck } from '../sql/functionRules.js';
import { formatSql, indent } from '../sql/format.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { kebab, oneLine, plural, qualified } from '../core/names.js';
import { GuardCode, type Plan, type PlanStatement } from './plan.js';
import { paramsBlock, paramsLegend } from './params.js';
import { WIPE_CASCADE_WALK, WIPE_CHILDREN_WALK, WIPE_REACH as REACH, WIPE_REACH_TABLE } from '../graph/truncate.js';

/**
 * Policy -> Plan. Pure: the same policy always yields the same statements. The statements are
 * what a DBA reviews, what an operator pastes, and what the runner executes, so every check
 * lives here, inside the SQL, as an assertion that raises and rolls the transaction back.
 *
 * State the script needs lives in temporary tables in pg_temp, always named with the pg_temp
 * prefix so that no table of the database can stand in for them:
 *   purgekit_params   the one parameter block (filled in by hand, by `render`, or bound by the runner)
 *   purgekit_subject  the keys being purged (purge only)
 *   purgekit_report   one row per step and check; the closing result set; it outlives COMMIT so
 *                     that the final SELECT can show it. The others are ON COMMIT DROP.
 */
export function compile(policy: Policy): Plan {
  const c = new Compiler(policy);
  return c.plan();
}

const PARAMS = 'pg_temp.purgekit_params';
const SUBJECT = 'pg_temp.purgekit_subject';
const REPORT = 'pg_temp.purgekit_report';
const SETTINGS = 'pg_temp.purgekit_settings';

/** The working table of a named key set (sets:); set names are lowercase, so no quoting. */
function setTable(name: string): string {
  return `pg_temp.purgekit_set_${name}`;
}

class Compiler {
  private readonly out: PlanStatement[] = [];
  private readonly hasParams: boolean;
  private readonly forceMulti: boolean;

  constructor(private readonly policy: Policy) {
    this.forceMulti = policy.kind === 'purge';
    this.hasParams = policy.params.length > 0 || policy.flags.length > 0 || this.forceMulti;
  }

  plan(): Plan {
    const p = this.policy;
    this.begin();
    this.requiredTables();
    this.functionsGuard();
    if (p.subject) this.subject();
    p.sets.forEach((set, i) => this.keySet(set, i));
    const after = p.expect.filter((e) => e.when === 'after' || p.kind === 'check');
    const before = p.kind === 'check' ? [] : p.expect.filter((e) => e.when === 'before');
    before.forEach((e) => this.expectation(e, p.expect.indexOf(e)));
    if (before.length) this.verdict('before');
    p.preserve.forEach((rule, i) => this.preserveBefore(rule, i));
    p.steps.forEach((step, i) => this.step(step, i));
    if (p.wipe) this.wipe();
    p.preserve.forEach((rule, i) => this.preserveAfter(rule, i));
    after.forEach((e) => this.expectation(e, p.expect.indexOf(e)));
    if (after.length) this.verdict('after');
    this.settingsCheck();
    this.end();
    return {
      name: p.name,
      kind: p.kind,
      ...(p.description ? { description: p.description } : {}),
      source: p.source,
      params: p.params,
      flags: p.flags,
      forceMulti: this.forceMulti,
      maxSubjects: p.subject?.max ?? 1,
      ...(p.allowFunctions?.length ? { allowFunctions: p.allowFunctions } : {}),
      statements: this.out,
    };
  }

  private add(s: PlanStatement): void {
    this.out.push(s);
  }

  /** Author SQL with :subject and :param replaced by reads of the script's own tables. */
  private sql(fragment: SqlFragment): string {
    return fragment.parts
      .map((part) => {
        if (typeof part === 'string') return part;
        if (part.ref === 'subject') return `(TABLE ${SUBJECT})`;
        if (this.policy.sets.some((set) => set.name === part.ref)) return `(TABLE ${setTable(part.ref)})`;
        const flag = this.policy.flags.find((x) => x.name === part.ref);
        if (flag) return this.flag(flag.name);
        const param = this.policy.params.find((x) => x.name === part.ref)!;
        const column = quoteIdent(param.name);
        return `(SELECT ${param.normalize ? `${param.normalize}(${column})` : column} FROM ${PARAMS})`;
      })
      .join('');
  }

  /** A flag's value, read from the parameter block (a boolean, never NULL). */
  private flag(name: string): string {
    return `(SELECT ${quoteIdent(name)} FROM ${PARAMS})`;
  }

  /** A preserve rule's condition; with `if:`, true only while its flag is set. */
  private preserved(rule: Preserve): string {
    return rule.if ? `${this.flag(rule.if)} AND (${this.sql(rule.where)})` : this.sql(rule.where);
  }

  private begin(): void {
    const p = this.policy;
    this.add({
      role: 'begin',
      title: p.kind === 'check' ? 'One transaction, read-only once its working tables exist: a check changes nothing.' : 'One transaction: any error or failed check below rolls everything back.',
      notes: [],
      sql: 'BEGIN',
    });
    this.add({
      role: 'setup',
      title: `Unqualified names in the policy's SQL resolve in schema ${p.schema}; a run never waits long behind a lock.`,
      notes: [],
      sql: `SET LOCAL search_path = ${quoteIdent(p.schema)}, pg_temp`,
      verbatim: true,
    });
    this.add({ role: 'setup', title: '', notes: [], sql: "SET LOCAL lock_timeout = '10s'", verbatim: true });
    this.add({
      role: 'setup',
      title: 'The report: one row per step and check, shown at the end. It outlives COMMIT; the other working tables go with it (ON COMMIT DROP).',
      notes: [],
      // Not DROP TABLE IF EXISTS: in a fresh session that prints a NOTICE about pg_temp.
      sql: `DO $report$ BEGIN IF to_regclass('${REPORT}') IS NOT NULL THEN DROP TABLE ${REPORT}; END IF; END $report$`,
      verbatim: true,
    });
    this.add({
      role: 'setup',
      title: '',
      notes: [],
      sql: `CREATE TEMP TABLE purgekit_report (\n  seq integer GENERATED ALWAYS AS IDENTITY,\n  item text NOT NULL,\n  target text,\n  outcome text NOT NULL,\n  rows bigint,\n  detail text,\n  mark bigint -- bookkeeping of the checks, not shown\n)`,
      verbatim: true,
    });
    this.settingsSnapshot();
    if (this.hasParams) this.params();
    if (p.kind === 'check') {
      this.add({
        role: 'setup',
        title: 'From here on the transaction is read-only: only the temporary tables above can be written.',
        notes: [],
        sql: 'SET LOCAL transaction_read_only = on',
        verbatim: true,
      });
    }
  }

  private params(): void {
    const p = this.policy;
    const shape = { params: p.params, flags: p.flags, forceMulti: this.forceMulti, maxSubjects: p.subject?.max ?? 1 };
    this.add({
      role: 'params',
      title: 'Parameters: the only values this script reads. NULL means not given.',
      notes: [
        ...paramsLegend(shape),
        `Fill them in by hand, or let purgekit render do it: purgekit render ${p.name}${p.params[0] ? ` --${kebab(p.params[0].name)} <value>` : ''}`,
        'purgekit plan/apply bind the values instead; they are never spliced into the SQL.',
      ],
      sql: paramsBlock(shape),
      verbatim: true,
    });
  }

  /** Every table the script needs, checked at once so that a missing one is named up front. */
  private requiredTables(): void {
    const p = this.policy;
    const tables = new Map<string, string>();
    const need = (t: TableName, why: string) => {
      const key = qualified(t);
      if (!tables.has(key)) tables.set(key, why);
    };
    if (p.subject) need(p.subject.table, 'subject table');
    p.sets.forEach((set) => need(set.table, `table of set ${set.name}`));
    p.steps.filter((s) => !s.optional).forEach((s) => need(s.table, `table of step ${p.steps.indexOf(s) + 1}`));
    p.preserve.forEach((r) => need(r.table, 'preserve table'));
    p.wipe?.tables.forEach((t) => need(t, 'wipe table'));
    p.keep.forEach((t) => need(t, 'keep table'));
    if (tables.size === 0) return;
    const values = [...tables].map(([name, why]) => `(${quoteLiteral(name)}, ${quoteLiteral(why)})`).join(',\n    ');
    this.add({
      role: 'guard',
      title: 'Guard: every table the policy needs exists (optional step tables excepted).',
      notes: [],
      sql: doBlock('guard', ['_missing text;'], [
        `SELECT string_agg(format('%s (%s)', name, why), ', ') INTO _missing`,
        `FROM (VALUES\n    ${values}\n) AS needed (name, why)`,
        'WHERE to_regclass(name) IS NULL;',
        'IF _missing IS NOT NULL THEN',
        `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.tableMissing}', MESSAGE = 'required table is absent: ' || _missing;`,
        'END IF;',
      ]),
    });
  }

  private subject(): void {
    const s = this.policy.subject!;
    const key = quoteIdent(s.key);
    const table = qualified(s.table);
    this.add({
      role: 'subject',
      title: `Subject: the ${s.table.name}.${s.key} values being purged.`,
      notes: [],
      sql: `CREATE TEMP TABLE purgekit_subject ON COMMIT DROP AS\nSELECT ${key} FROM ${table} WITH NO DATA`,
      verbatim: true,
    });
    const given = (by: readonly string[]) => by.map((b) => `${quoteIdent(b)} IS NOT NULL`).join(' AND ');
    s.lookup.forEach((lookup, i) => {
      const earlier = s.lookup.slice(0, i).map((l) => `NOT (${given(l.by)})`);
      const condition = [...earlier, given(lookup.by)].join(' AND ');
      this.add({
        role: 'subject',
        title: `Lookup ${i + 1} of ${s.lookup.length}, used when ${lookup.by.map((b) => `${b}`).join(' and ')} ${lookup.by.length > 1 ? 'are' : 'is'} given${i ? ' and no earlier lookup applies' : ''}:`,
        notes: [`  ${oneLine(lookup.where.text)}`, 'Rows found are locked (FOR UPDATE): rows referencing them cannot be inserted until COMMIT.'],
        sql: `INSERT INTO ${SUBJECT} SELECT ${key} FROM ${table} WHERE (SELECT ${condition} FROM ${PARAMS}) AND (${this.sql(lookup.where)}) FOR UPDATE`,
        dryRun: `INSERT INTO ${SUBJECT} SELECT ${key} FROM ${table} WHERE (SELECT ${condition} FROM ${PARAMS}) AND (${this.sql(lookup.where)})`,
        probe: `SELECT ${key} FROM ${table} WHERE ${this.sql(lookup.where)}`,
        source: ['subject', 'lookup', i, 'where'],
      });
    });
    const anyGiven = s.lookup.map((l) => `(${given(l.by)})`).join(' OR ');
    const choices = s.lookup.map((l) => l.by.map((b) => b).join(' + ')).join(', or ');
    const preserved = this.policy.preserve.filter((r) => qualified(r.table) === table);
    const body = [
      `IF NOT (SELECT ${anyGiven} FROM ${PARAMS}) THEN`,
      `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.noLookup}', MESSAGE = ${quoteLiteral(`no lookup parameters given: set ${choices}`)};`,
      'END IF;',
      `SELECT count(*) INTO _matched FROM ${SUBJECT};`,
      'IF _matched = 0 THEN',
      `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.noSubject}', MESSAGE = ${quoteLiteral(`no ${s.table.name} row matched`)};`,
      'END IF;',
      `IF _matched > ${s.max} AND NOT (SELECT force_multi FROM ${PARAMS}) THEN`,
      `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.multipleSubjects}', MESSAGE = format(${quoteLiteral(`%s ${s.table.name} rows matched, more than ${s.max}; set force_multi to purge them all`)}, _matched);`,
      'END IF;',
    ];
    preserved.forEach((rule) => {
      const ruleNo = this.policy.preserve.indexOf(rule) + 1;
      body.push(
        ...[
          `IF EXISTS (SELECT FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${SUBJECT}) AND (${this.preserved(rule)})) THEN`,
          `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.preserveViolated}', MESSAGE = ${quoteLiteral(`a matched ${s.table.name} row is preserved by preserve rule ${ruleNo} (${oneLine(rule.where.text)})`)};`,
          'END IF;',
        ],
      );
    });
    body.push(this.reportRow('subject', quoteLiteral(qualified(s.table)), "'matched'", '_matched', 'NULL'));
    this.add({
      role: 'guard',
      title: `Guard: one lookup applies and it matched ${s.max === 1 ? 'exactly 1 row' : `between 1 and ${s.max} rows`} (more only with force_multi)${preserved.length ? ', none of them preserved' : ''}.`,
      notes: [],
      sql: doBlock('guard', ['_matched bigint;'], body),
    });
    this.add({
      role: 'subject',
      title: 'Statistics for the subject table, so that the steps below use indexes.',
      notes: [],
      sql: `ANALYZE ${SUBJECT}`,
      verbatim: true,
      dryRun: null,
    });
  }

  /**
   * A named key set: captured once, before any step, and read by later SQL as :name. Its rows
   * are locked like the subject's, so what the set names cannot change until COMMIT.
   */
  private keySet(set: KeySet, i: number): void {
    const table = qualified(set.table);
    const columns = set.key.map(quoteIdent).join(', ');
    const select = `SELECT ${columns} FROM ${table} WHERE ${this.sql(set.where)}`;
    // Laid out by hand: three short lines read better than the formatter's ten.
    const insert = `INSERT INTO ${setTable(set.name)}\nSELECT ${columns} FROM ${table}\nWHERE ${this.sql(set.where)}`;
    this.add({
      role: 'subject',
      title: `Set ${set.name}: ${set.key.join(', ')} of the ${qualified(set.table)} rows where ${oneLine(set.where.text)}`,
      notes: [
        ...(set.description ? set.description.trim().split('\n') : []),
        ...(i === 0 ? ['Captured before any step and locked (FOR UPDATE); later SQL reads it as :' + set.name + '.'] : []),
      ],
      sql: `CREATE TEMP TABLE ${setTable(set.name).replace('pg_temp.', '')} ON COMMIT DROP AS\nSELECT ${columns} FROM ${table} WITH NO DATA`,
      verbatim: true,
    });
    this.add({
      role: 'subject',
      title: '',
      notes: [],
      sql: `${insert}\nFOR UPDATE`,
      dryRun: insert,
      verbatim: true,
      probe: select,
      source: ['sets', set.name, 'where'],
    });
    this.add({ role: 'subject', title: '', notes: [], sql: `ANALYZE ${setTable(set.name)}`, verbatim: true, dryRun: null });
  }

  private preserveCondition(table: TableName): string | undefined {
    const rules = this.policy.preserve.filter((r) => qualified(r.table) === qualified(table));
    if (!rules.length) return undefined;
    return rules.map((r) => `(${this.preserved(r)}) IS NOT TRUE`).join(' AND ');
  }

  /**
   * A preserve rule is checked without counting its table: the steps' deletes exclude preserved
   * rows, so if the table lost exactly the rows the steps removed and nothing in it was updated,
   * no preserved row can be gone. pg_stat_xact_user_tables, read inside this transaction before
   * and after the steps, says what the table lost, cascades and triggers included; the check
   * costs the same on a table of ten rows or ten million. Only when a step declares a cascade
   * into the table (so other deletes there are expected) are the preserved rows counted.
   */
  private preserveCounted(rule: Preserve): boolean {
    return this.policy.steps.some((s) => s.cascades.some((c) => qualified(c) === qualified(rule.table)));
  }

  private preserveBefore(rule: Preserve, i: number): void {
    const table = qualified(rule.table);
    // A rule whose flag is not set is reported as skipped, and its check after the steps does nothing.
    const outcome = rule.if ? `CASE WHEN ${this.flag(rule.if)} THEN 'preserved' ELSE 'skipped' END` : "'preserved'";
    const label = `${quoteLiteral(`preserve ${i + 1}`)}, ${quoteLiteral(qualified(rule.table))}, ${outcome}`;
    const counted = this.preserveCounted(rule);
    this.add({
      role: 'preserve',
      title: counted
        ? `Preserve rule ${i + 1}: rows of ${qualified(rule.table)} that must survive, counted before anything is removed (a step cascades into this table).`
        : `Preserve rule ${i + 1}: rows of ${qualified(rule.table)} that must survive; the table's changes so far, to compare after the steps.`,
      notes: [`  ${oneLine(rule.where.text)}`, ...(rule.if ? [`Applies only when flag ${rule.if} is set.`] : []), ...(rule.description ? [rule.description] : [])],
      sql: counted
        ? `INSERT INTO ${REPORT} (item, target, outcome, rows, detail) SELECT ${label}, count(*), ${quoteLiteral(oneLine(rule.where.text))} FROM ${table} WHERE ${this.preserved(rule)}`
        : `INSERT INTO ${REPORT} (item, target, outcome, rows, detail, mark) SELECT ${label}, NULL, ${quoteLiteral(oneLine(rule.where.text))}, ${changesOf(table)}`,
      probe: `SELECT count(*) FROM ${table} WHERE ${this.preserved(rule)}`,
      source: ['preserve', i, 'where'],
      table: rule.table,
    });
  }

  private preserveAfter(rule: Preserve, i: number): void {
    const table = qualified(rule.table);
    const item = quoteLiteral(`preserve ${i + 1}`);
    const body = this.preserveCounted(rule)
      ? [
          `SELECT rows INTO _before FROM ${REPORT} WHERE item = ${item};`,
          indentFormatted(`SELECT count(*) INTO _after FROM ${table} WHERE ${this.preserved(rule)};`),
          'IF _after < _before THEN',
          `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.preserveViolated}', MESSAGE = format(${quoteLiteral(`preserve rule ${i + 1} on ${qualified(rule.table)} violated: %s rows before, %s after`)}, _before, _after);`,
          'END IF;',
        ]
      : [
          `SELECT ${changesOf(table)} - (SELECT mark FROM ${REPORT} WHERE item = ${item}) INTO _changed;`,
          `SELECT coalesce(sum(rows), 0) INTO _removed FROM ${REPORT} WHERE item LIKE 'step %' AND outcome = 'removed' AND target = ${quoteLiteral(qualified(rule.table))};`,
          'IF _changed <> _removed THEN',
          `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.preserveViolated}', MESSAGE = format(${quoteLiteral(`preserve rule ${i + 1} on ${qualified(rule.table)}: %s rows were deleted or updated there but the steps removed %s; a cascade or trigger changed others, and a preserved row may be among them`)}, _changed, _removed);`,
          'END IF;',
        ];
    this.add({
      role: 'check',
      title: `Check: every row kept by preserve rule ${i + 1} is still there (a cascade or trigger could have removed one).`,
      notes: [],
      dryRun: null,
      sql: doBlock('check', this.preserveCounted(rule) ? ['_before bigint;', '_after bigint;'] : ['_changed bigint;', '_removed bigint;'], [
        ...(rule.if ? [`IF NOT ${this.flag(rule.if)} THEN`, '  RETURN;', 'END IF;'] : []),
        ...body,
      ]),
      table: rule.table,
    });
  }

  private step(step: Step, i: number): void {
    const n = i + 1;
    const table = qualified(step.table);
    const target = quoteLiteral(qualified(step.table));
    const keepOut = this.preserveCondition(step.table);
    const conditions = [step.where ? `(${this.sql(step.where)})` : undefined, keepOut].filter(Boolean);
    const where = conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '';
    const body: string[] = [];
    if (step.optional) {
      body.push(
        `IF to_regclass(${quoteLiteral(table)}) IS NULL THEN`,
        `  ${this.reportRow(`step ${n}`, target, "'absent'", 'NULL', "'optional table is absent; skipped'")}`,
        '  RETURN;',
        'END IF;',
      );
    }
    if (step.if) {
      body.push(
        `IF NOT (SELECT ${quoteIdent(step.if)} FROM ${PARAMS}) THEN`,
        `  ${this.reportRow(`step ${n}`, target, "'skipped'", 'NULL', quoteLiteral(`flag ${step.if} is not set`))}`,
        '  RETURN;',
        'END IF;',
      );
    }
    body.push(indentFormatted(`SELECT count(*) INTO _counted FROM ${table}${where};`));
    if (step.maxRows !== undefined) {
      body.push(
        `IF _counted > ${step.maxRows} THEN`,
        `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.tooManyRows}', MESSAGE = format(${quoteLiteral(`step ${n} (${qualified(step.table)}) would remove %s rows, more than its max_rows ${step.maxRows}`)}, _counted);`,
        'END IF;',
      );
    }
    const dryRun = [...body, this.reportRow(`step ${n}`, target, "'would remove'", '_counted', 'NULL')];
    body.push(
      indentFormatted(`DELETE FROM ${table}${where};`),
      'GET DIAGNOSTICS _removed = ROW_COUNT;',
      'IF _removed <> _counted THEN',
      `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.countMismatch}', MESSAGE = format(${quoteLiteral(`step ${n} (${qualified(step.table)}) removed %s rows but counted %s just before`)}, _removed, _counted);`,
      'END IF;',
      this.reportRow(`step ${n}`, target, "'removed'", '_removed', 'NULL'),
    );
    const notes: string[] = [];
    if (step.description) notes.push(...step.description.trim().split('\n'));
    notes.push(step.where ? `Removes rows where: ${oneLine(step.where.text)}` : 'Removes every row (all_rows: true).');
    if (keepOut) notes.push(`Keeps rows matched by a preserve rule of ${qualified(step.table)}.`);
    if (step.optional) notes.push('Optional: skipped and reported as absent when the table does not exist.');
    if (step.if) notes.push(`Runs only when flag ${step.if} is set.`);
    if (step.maxRows !== undefined) notes.push(`Fails if it would remove more than ${step.maxRows} ${plural(step.maxRows, 'row')}.`);
    if (step.cascades.length) notes.push(`Expected to cascade to: ${step.cascades.map(qualified).join(', ')}.`);
    this.add({
      role: 'step',
      title: `Step ${n} of ${this.policy.steps.length}: ${qualified(step.table)}`,
      notes,
      sql: doBlock('step', ['_counted bigint;', '_removed bigint;'], body),
      dryRun: doBlock('step', ['_counted bigint;'], dryRun),
      probe: `DELETE FROM ${table}${where}`,
      source: step.where ? ['steps', i, 'where'] : ['steps', i, 'table'],
      condition: conditions.join(' AND '),
      ...(step.if ? { flag: step.if } : {}),
      optional: step.optional,
      cascades: step.cascades,
      table: step.table,
      step: n,
    });
  }

  private wipe(): void {
    const w = this.policy.wipe!;
    const listed = w.tables.map((t) => quoteLiteral(qualified(t))).join(', ');
    const keep = this.policy.keep.map((t) => quoteLiteral(qualified(t))).join(', ');
    const hasKeep = this.policy.keep.length > 0;
    this.add({
      role: 'guard',
      title: `Wipe reach: the tables TRUNCATE${w.cascade ? ' ... CASCADE' : ''} will empty, computed now from pg_catalog.`,
      notes: [
        'Listed tables with their partitions and inheritance children, then, transitively, every table',
        'with a foreign key to one of them (and the partitions of those). Each is counted and reported,',
        'with the foreign-key path that reaches it.',
        ...(hasKeep
          ? [
              `Fails if the wipe would reach a keep table or one of its partitions or inheritance children: ${this.policy.keep.map(qualified).join(', ')}.`,
              'Keep tables are counted now and again after the TRUNCATE (a trigger could still empty one).',
            ]
          : []),
      ],
      sql: WIPE_REACH_TABLE,
      verbatim: true,
    });
    this.add({
      role: 'guard',
      title: '',
      notes: [],
      sql: doBlock('reach', ['_added bigint;', '_kept text;', '_table record;', '_rows bigint;'], [
        `INSERT INTO ${REACH} SELECT t, 'listed', t::text FROM unnest(ARRAY[${listed}]::regclass[]) AS t;`,
        ...WIPE_CHILDREN_WALK,
        ...(w.cascade ? WIPE_CASCADE_WALK : []),
        ...(hasKeep
          ? [
              '-- A row lost from a partition or inheritance child of a keep table is lost from the keep table.',
              'WITH RECURSIVE kept (relid, keep) AS (',
              `  SELECT to_regclass(k), to_regclass(k) FROM unnest(ARRAY[${keep}]) AS k`,
              '  UNION',
              '  SELECT i.inhrelid::regclass, kept.keep FROM pg_inherits i JOIN kept ON kept.relid = i.inhparent',
              ')',
              "SELECT string_agg(format('%s via %s', kept.keep, r.path), '; ' ORDER BY r.path) INTO _kept",
              `FROM kept JOIN ${REACH} r ON r.relid = kept.relid;`,
              'IF _kept IS NOT NULL THEN',
              `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.keepReached}', MESSAGE = 'the wipe would reach a keep table: ' || _kept;`,
              'END IF;',
            ]
          : []),
        '-- Rows each table loses: its own rows (ONLY), as its partitions and children are listed themselves.',
        `FOR _table IN SELECT r.relid, r.reason, c.relkind, format('%I.%I', n.nspname, c.relname) AS name`,
        `  FROM ${REACH} r JOIN pg_class c ON c.oid = r.relid JOIN pg_namespace n ON n.oid = c.relnamespace`,
        "  ORDER BY r.reason <> 'listed', 4 LOOP",
        "  IF _table.relkind = 'p' THEN",
        `    ${this.reportRow('wipe', '_table.name', "'emptied'", 'NULL', "_table.reason || '; partitioned, rows counted in its partitions'")}`,
        '  ELSE',
        "    EXECUTE format('SELECT count(*) FROM ONLY %s', _table.relid) INTO _rows;",
        `    ${this.reportRow('wipe', '_table.name', "'emptied'", '_rows', '_table.reason')}`,
        '  END IF;',
        'END LOOP;',
        ...(hasKeep
          ? [
              `FOR _table IN SELECT k AS name FROM unnest(ARRAY[${keep}]) AS k LOOP`,
              "  EXECUTE format('SELECT count(*) FROM %s', _table.name) INTO _rows;",
              `  ${this.reportRow('keep', '_table.name', "'kept'", '_rows', "'must not lose a row'")}`,
              'END LOOP;',
            ]
          : []),
      ]),
    });
    const tables = w.tables.map((t) => `  ${qualified(t)}`).join(',\n');
    const options = [w.restartIdentity ? 'RESTART IDENTITY' : 'CONTINUE IDENTITY', w.cascade ? 'CASCADE' : 'RESTRICT'].join(' ');
    this.add({
      role: 'wipe',
      title: `Wipe: empty ${w.tables.length} ${plural(w.tables.length, 'table')}${w.cascade ? ' and every table the cascade reaches (listed in the report)' : ''}.`,
      notes: [w.restartIdentity ? 'Sequences owned by emptied tables restart at their start value.' : 'Sequences keep their values.'],
      sql: `TRUNCATE TABLE\n${tables}\n${options}`,
      verbatim: true,
      dryRun: null,
    });
    if (hasKeep) {
      this.add({
        role: 'check',
        title: 'Check: every keep table still has all its rows (a TRUNCATE or DELETE trigger could have removed some).',
        notes: [],
        dryRun: null,
        sql: doBlock('check', ['_table record;', '_rows bigint;'], [
          `FOR _table IN SELECT target, rows FROM ${REPORT} WHERE item = 'keep' ORDER BY seq LOOP`,
          "  EXECUTE format('SELECT count(*) FROM %s', _table.target) INTO _rows;",
          '  IF _rows < _table.rows THEN',
          `    RAISE EXCEPTION USING ERRCODE = '${GuardCode.preserveViolated}', MESSAGE = format('keep table %s lost rows: %s before the wipe, %s after', _table.target, _table.rows, _rows);`,
          '  END IF;',
          'END LOOP;',
        ]),
      });
    }
  }

  /** After-phase checks describe a database the dry run never produces. */
  private afterSteps(e?: Expectation): { dryRun?: null } {
    return this.policy.kind !== 'check' && (!e || e.when === 'after') ? { dryRun: null } : {};
  }

  private expectation(e: Expectation, i: number): void {
    const bounds: string[] = [];
    const failures: string[] = [];
    if (e.equals !== undefined) {
      bounds.push(`= ${e.equals}`);
      failures.push(`_value <> ${e.equals}`);
    }
    if (e.min !== undefined) {
      bounds.push(`>= ${e.min}`);
      failures.push(`_value < ${e.min}`);
    }
    if (e.max !== undefined) {
      bounds.push(`<= ${e.max}`);
      failures.push(`_value > ${e.max}`);
    }
    const wanted = bounds.join(' and ');
    this.add({
      role: 'expect',
      ...this.afterSteps(e),
      probe: `SELECT (${this.sql(e.query)})::numeric`,
      source: ['expect', i, 'query'],
      title: `Expect ${i + 1}${this.policy.kind === 'check' ? '' : ` (${e.when} the ${this.policy.kind === 'wipe' ? 'wipe' : 'steps'})`}: ${oneLine(e.name)}, value ${wanted}.`,
      notes: e.if ? [`Checked only when flag ${e.if} is set.`] : [],
      sql: doBlock('expect', ['_value numeric;'], [
        ...(e.if
          ? [
              `IF NOT ${this.flag(e.if)} THEN`,
              `  ${this.reportRow(`expect ${i + 1}`, quoteLiteral(oneLine(e.name)), "'skipped'", 'NULL', quoteLiteral(`flag ${e.if} is not set`))}`,
              '  RETURN;',
              'END IF;',
            ]
          : []),
        indentFormatted(`_value := (${this.sql(e.query)});`),
        this.reportRow(
          `expect ${i + 1}`,
          quoteLiteral(oneLine(e.name)),
          `CASE WHEN _value IS NULL OR ${failures.join(' OR ')} THEN 'failed' ELSE 'ok' END`,
          'NULL',
          `format(${quoteLiteral(`value %s, wanted ${wanted}`)}, coalesce(_value::text, 'NULL'))`,
        ),
      ]),
    });
  }

  /** Raise once for all failed expectations of a phase, so the message names every one. */
  private verdict(phase: 'before' | 'after'): void {
    this.add({
      role: 'check',
      ...(phase === 'after' ? this.afterSteps() : {}),
      title: `Check: every expectation ${phase === 'before' ? 'checked before the steps' : 'above'} holds.`,
      notes: [],
      sql: doBlock('check', ['_failed text;'], [
        "SELECT string_agg(format('%s (%s)', target, detail), '; ' ORDER BY seq) INTO _failed",
        `FROM ${REPORT} WHERE item LIKE 'expect %' AND outcome = 'failed';`,
        'IF _failed IS NOT NULL THEN',
        `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.expectFailed}', MESSAGE = 'expectation failed: ' || _failed;`,
        'END IF;',
      ]),
    });
  }

  private end(): void {
    this.add({ role: 'commit', title: this.policy.kind === 'check' ? 'Nothing was changed.' : 'Every check held.', notes: [], sql: 'COMMIT' });
    this.add({
      role: 'report',
      title: 'What happened, one row per step and check.',
      notes: [],
      sql: `SELECT item, target, outcome, rows, detail FROM ${REPORT} ORDER BY seq`,
    });
  }

  /**
   * Author SQL may only read. Validation has judged the built-ins (pg_catalog) by name; what any
   * other name means is known only in the database: a function the policy calls that is VOLATILE
   * in the live catalog (a user-defined one, an extension's) stops the run before any author SQL
   * runs. Functions in allow_functions and the harmless volatile ones (random(), ...) are not asked.
   */
  private functionsGuard(): void {
    const p = this.policy;
    const called = new Map<string, FunctionName>();
    for (const f of authorSql(p).flatMap((x) => x.fragment.functions ?? [])) {
      if (needsCatalogCheck(f, p.allowFunctions ?? [])) called.set(`${f.schema ?? ''}.${f.name}`, f);
    }
    if (called.size === 0) return;
    const values = [...called.values()].map((f) => `(${f.schema === undefined ? 'NULL' : quoteLiteral(f.schema)}, ${quoteLiteral(f.name)})`).join(', ');
    this.add({
      role: 'guard',
      title: `Guard: no function the policy's SQL calls is VOLATILE in this database (one could change data or settings)${p.allowFunctions?.length ? '; allow_functions excepted' : ''}.`,
      notes: [],
      sql: doBlock('guard', ['_volatile text;'], [
        "SELECT string_agg(DISTINCT format('%I.%I', n.nspname, p.proname), ', ') INTO _volatile",
        `FROM (VALUES ${values}) AS called (schema, name)`,
        'JOIN pg_catalog.pg_proc p ON p.proname = called.name',
        'JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace',
        "WHERE p.provolatile = 'v' AND n.nspname = ANY (CASE WHEN called.schema IS NULL THEN current_schemas(true)::text[] ELSE ARRAY[called.schema::text] END);",
        'IF _volatile IS NOT NULL THEN',
        `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.volatileFunction}', MESSAGE = 'the policy calls a VOLATILE function (it could change data or settings): ' || _volatile || '; list it in allow_functions only if you vouch for it';`,
        'END IF;',
      ]),
    });
  }

  /** The settings that switch off foreign keys and triggers, resolve names, or say who runs: as at the start. */
  private settingsSnapshot(): void {
    this.add({
      role: 'setup',
      title: 'Settings that switch off foreign keys and triggers or change what names mean, as they are now: checked again before COMMIT.',
      notes: [],
      sql: `CREATE TEMP TABLE purgekit_settings ON COMMIT DROP AS
SELECT current_setting('session_replication_role') AS session_replication_role, current_setting('search_path') AS search_path, current_user AS role`,
      verbatim: true,
    });
  }

  /**
   * The last line: a function that calls set_config() (a user-defined one marked STABLE, say)
   * could have set session_replication_role = replica, which silently switches off foreign-key
   * checks, ON DELETE CASCADE and triggers, or moved search_path or the role. Any of that rolls
   * the run back, as does a run started with foreign keys off.
   */
  private settingsCheck(): void {
    this.add({
      role: 'check',
      title: 'Check: foreign keys and triggers were on for the whole run, and no setting that could switch them off or redirect names has changed.',
      notes: [],
      sql: doBlock('check', ['_changed text;'], [
        "SELECT concat_ws(', ',",
        "  CASE WHEN current_setting('session_replication_role') <> 'origin' OR session_replication_role <> 'origin' THEN format('session_replication_role %s at the start, %s now (foreign keys and triggers fire only under origin)', session_replication_role, current_setting('session_replication_role')) END,",
        "  CASE WHEN current_setting('search_path') <> search_path THEN format('search_path %s at the start, %s now', search_path, current_setting('search_path')) END,",
        "  CASE WHEN current_user <> role THEN format('role %s at the start, %s now', role, current_user) END",
        `) INTO _changed FROM ${SETTINGS};`,
        "IF _changed <> '' THEN",
        `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.settingsChanged}', MESSAGE = 'a setting that keeps this run honest changed or was off: ' || _changed;`,
        'END IF;',
      ]),
    });
  }

  private reportRow(item: string, target: string, outcome: string, rows: string, detail: string): string {
    return `INSERT INTO ${REPORT} (item, target, outcome, rows, detail) VALUES (${quoteLiteral(item)}, ${target}, ${outcome}, ${rows}, ${detail});`;
  }
}

/**
 * A DO block. The body is PL/pgSQL laid out here; SQL inside it comes formatted. Columns win over
 * the block's variables (#variable_conflict use_column) so author SQL means what it says, and the
 * variables carry a leading underscore to make a clash unlikely in the first place.
 */
function doBlock(tag: string, declarations: readonly string[], body: readonly string[]): string {
  const text = ['#variable_conflict use_column', 'DECLARE', ...declarations.map((d) => `  ${d}`), 'BEGIN', ...body.map((b) => indent(b, 2)), 'END'].join('\n');
  let quote = `$${tag}$`;
  for (let n = 2; text.includes(quote); n++) quote = `$${tag}${n}$`;
  return `DO ${quote}\n${text}\n${quote}`;
}

/** Format one SQL statement (with its PL/pgSQL INTO or assignment kept on the first line). */
function indentFormatted(statement: string): string {
  const body = statement.replace(/;$/, '');
  const assign = body.match(/^(_\w+ := )\((.*)\)$/s);
  if (assign) return `${assign[1]}(\n${indent(formatSql(assign[2]!), 2)}\n);`;
  return `${formatSql(body)};`;
}

/** Rows deleted or updated in a table (and all its partitions) so far in this transaction. */
function changesOf(table: string): string {
  // pg_partition_tree() is empty for a table that is not partitioned, hence the table itself too.
  const name = quoteLiteral(table);
  // The functions behind pg_stat_xact_user_tables, called for just these tables: planning the
  // whole view costs more than the check.
  return `(SELECT coalesce(sum(pg_stat_get_xact_tuples_deleted(t) + pg_stat_get_xact_tuples_updated(t)), 0) FROM (SELECT ${name}::regclass UNION SELECT relid FROM pg_partition_tree(${name})) AS tables (t))`;
}

