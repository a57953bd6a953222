import { describeAction } from '../outbox/spec.js';
import { kebab, oneLine, plural, qualified } from '../core/names.js';
import type { AnyStepNode, ExpectNode, PlanNode, UpdateValue } from './nodes.js';
import { paramsLegend } from './params.js';
import { batchNotes } from './print/batch.js';

/**
 * The comment above a node's statement in the generated file: a one-line title (empty: the
 * statement continues the one before) and further lines. The runner names a failed statement
 * by its title.
 */
export interface Heading {
  readonly title: string;
  readonly notes: readonly string[];
}

const none: Heading = { title: '', notes: [] };

export function heading(node: PlanNode): Heading {
  switch (node.kind) {
    case 'begin':
      return { title: node.check ? 'One transaction, read-only once its working tables exist: a check changes nothing.' : 'One transaction: any error or failed check below rolls everything back.', notes: [] };
    case 'apply-only':
      return {
        title: `For purgekit apply only: step${node.steps.length === 1 ? '' : 's'} ${node.steps.join(', ')} ${node.steps.length === 1 ? 'is' : 'are'} batched (one transaction per batch, which one script cannot do). This raises at once and nothing below runs.`,
        notes: [`Review the steps below; run them with: purgekit plan ${node.policy} (rows and batches), purgekit apply ${node.policy}`],
      };
    case 'search-path':
      return { title: `Unqualified names in the policy's SQL resolve in schema ${node.schema}; a run never waits long behind a lock.`, notes: [] };
    case 'report-reset':
      return { title: 'The report: one row per step and check, shown at the end. It outlives COMMIT; the other working tables go with it (ON COMMIT DROP).', notes: [] };
    case 'lock-timeout':
    case 'report-table':
    case 'wipe-reach':
      return none;
    case 'raise-function':
      return { title: 'Every guard below raises through this function: an SQLSTATE of class PK (see docs/FORMATS.md) and a message.', notes: [] };
    case 'settings-snapshot':
      return { title: 'Settings that switch off foreign keys and triggers or change what names mean, as they are now: checked again before COMMIT.', notes: [] };
    case 'params': {
      const first = node.shape.params[0];
      return {
        title: 'Parameters: the only values this script reads. NULL means not given.',
        notes: [
          ...paramsLegend(node.shape),
          `Fill them in by hand, or let purgekit render do it: purgekit render ${node.policy}${first ? ` --${kebab(first.name)} <value>` : ''}`,
          'purgekit plan/apply bind the values instead; they are never spliced into the SQL.',
        ],
      };
    }
    case 'read-only':
      return { title: 'From here on the transaction is read-only: only the temporary tables above can be written.', notes: [] };
    case 'tables-guard':
      return { title: 'Guard: every table the policy needs exists (optional step tables excepted).', notes: [] };
    case 'functions-guard':
      return { title: `Guard: no function the policy's SQL calls is VOLATILE in this database (one could change data or settings)${node.allowFunctions ? '; allow_functions excepted' : ''}.`, notes: [] };
    case 'subject-table':
      return { title: `Subject: the ${node.table.name}.${node.key} values being purged.`, notes: [] };
    case 'lookup':
      return {
        title: `Lookup ${node.lookup} of ${node.count}, used when ${node.by.join(' and ')} ${node.by.length > 1 ? 'are' : 'is'} given${node.lookup > 1 ? ' and no earlier lookup applies' : ''}:`,
        notes: [`  ${oneLine(node.where.text)}`, 'Rows found are locked (FOR UPDATE): rows referencing them cannot be inserted until COMMIT.'],
      };
    case 'subject-count':
      return { title: 'The rows the lookups matched, counted into the report before the guard: a run the guard stops still says how many.', notes: [] };
    case 'subject-guard':
      return {
        title: `Guard: one lookup applies and it matched ${node.max === 1 ? 'exactly 1 row' : `between 1 and ${node.max} rows`} (more only with force_multi)${node.preserved.length ? ', none of them preserved' : ''}.`,
        notes: [],
      };
    case 'analyze':
      return node.of.kind === 'subject' ? { title: 'Statistics for the subject table, so that the steps below use indexes.', notes: [] } : none;
    case 'set-table':
      return {
        title: `Set ${node.name}: ${node.key.join(', ')} of the ${qualified(node.table)} rows where ${oneLine(node.where.text)}`,
        notes: [
          ...(node.description ? node.description.trim().split('\n') : []),
          ...(node.first ? ['Captured before any step and locked (FOR UPDATE); later SQL reads it as :' + node.name + '.'] : []),
        ],
      };
    case 'set-fill':
      return none;
    case 'expect':
      return { title: `Expect ${expectLine(node)}`, notes: node.flag ? [`Checked only when flag ${node.flag} is set.`] : [] };
    case 'verdict':
      return { title: `Check: every expectation ${node.phase === 'before' ? 'checked before the steps' : 'above'} holds.`, notes: [] };
    case 'preserve': {
      const table = qualified(node.table);
      const c = node.condition;
      return {
        title: node.counted
          ? `Preserve rule ${node.rule}: rows of ${table} that must survive, counted before anything is removed (a step cascades into this table).`
          : `Preserve rule ${node.rule}: rows of ${table} that must survive; the table's changes so far, to compare after the steps.`,
        notes: [`  ${oneLine(c.where.text)}`, ...(c.flag ? [`Applies only when flag ${c.flag} is set.`] : []), ...(node.description ? [node.description] : [])],
      };
    }
    case 'preserve-check':
      return { title: `Check: every row kept by preserve rule ${node.rule} is still there (a cascade or trigger could have removed one).`, notes: [] };
    case 'step':
      return { title: `Step ${node.step} of ${node.count}: ${qualified(node.table)}`, notes: stepNotes(node) };
    case 'update':
      return { title: `Step ${node.step} of ${node.count}: ${qualified(node.table)} (${node.mode}: the rows stay, columns are overwritten)`, notes: stepNotes(node) };
    case 'wipe-reach-table':
      return {
        title: `Wipe reach: the tables TRUNCATE${node.cascade ? ' ... CASCADE' : ''} will empty, computed now from pg_catalog.`,
        notes: [
          'Listed tables with their partitions and inheritance children, then, transitively, every table',
          'with a foreign key to one of them (and the partitions of those). Each is counted and reported,',
          'with the foreign-key path that reaches it.',
          ...(node.keep.length
            ? [
                `Fails if the wipe would reach a keep table or one of its partitions or inheritance children: ${node.keep.map(qualified).join(', ')}.`,
                'Keep tables are counted now and again after the TRUNCATE (a trigger could still empty one).',
              ]
            : []),
        ],
      };
    case 'wipe':
      return {
        title: `Wipe: empty ${node.tables.length} ${plural(node.tables.length, 'table')}${node.cascade ? ' and every table the cascade reaches (listed in the report)' : ''}.`,
        notes: [node.restartIdentity ? 'Sequences owned by emptied tables restart at their start value.' : 'Sequences keep their values.'],
      };
    case 'keep-check':
      return { title: 'Check: every keep table still has all its rows (a TRUNCATE or DELETE trigger could have removed some).', notes: [] };
    case 'settings-check':
      return { title: 'Check: foreign keys and triggers were on for the whole run, and no setting that could switch them off or redirect names has changed.', notes: [] };
    case 'commit':
      return { title: node.check ? 'Nothing was changed.' : 'Every check held.', notes: [] };
    case 'report':
      return { title: 'What happened, one row per step and check.', notes: [] };
    case 'outbox':
      return {
        title: 'Side effects after COMMIT: one job per action queued in purgekit.outbox (purgekit outbox init), in this transaction, before the deletes; purgekit outbox run does them.',
        notes: node.actions.map((a) => `${a.action}. ${describeAction(a.spec)}${a.forEach ? ` for each ${qualified(a.forEach.table)} row` : node.subject ? ' for each subject' : ''}${a.flag ? ` (only with flag ${a.flag})` : ''}`),
      };
  }
}

/** An expectation in one line, as the file's heading lists it: "2 (after the steps): no orders left, value = 0." */
export function expectLine(node: ExpectNode): string {
  return `${node.expect}${node.policyKind === 'check' ? '' : ` (${node.when} the ${node.policyKind === 'wipe' ? 'wipe' : 'steps'})`}: ${oneLine(node.name)}, value ${wanted(node)}.`;
}

/** An expectation's bounds as people read them: "= 0", ">= 1 and <= 5". */
export function wanted(e: ExpectNode): string {
  return [e.equals !== undefined && `= ${e.equals}`, e.min !== undefined && `>= ${e.min}`, e.max !== undefined && `<= ${e.max}`].filter(Boolean).join(' and ');
}

function stepNotes(step: AnyStepNode): string[] {
  const notes: string[] = [];
  if (step.description) notes.push(...step.description.trim().split('\n'));
  const verb = step.kind === 'step' ? 'Removes' : 'Updates';
  notes.push(step.where ? `${verb} rows where: ${oneLine(step.where.text)}` : `${verb} every row (all_rows: true).`);
  if (step.kind === 'update') notes.push(`Sets ${step.set.map((c) => `${c.column} to ${newValueText(c.value)}`).join(', ')}.`);
  if (step.keep.length) notes.push(`Keeps rows matched by a preserve rule of ${qualified(step.table)}.`);
  if (step.optional) notes.push('Optional: skipped and reported as absent when the table does not exist.');
  if (step.flag) notes.push(`Runs only when flag ${step.flag} is set.`);
  if (step.maxRows !== undefined) notes.push(`Fails if it would ${step.kind === 'step' ? 'remove' : 'update'} more than ${step.maxRows} ${plural(step.maxRows, 'row')}.`);
  if (step.cascades.length) notes.push(`Expected to cascade to: ${step.cascades.map(qualified).join(', ')}.`);
  if (step.kind === 'step') notes.push(...batchNotes(step));
  return notes;
}

/** A new value of an update step, as its heading says it. */
function newValueText(value: UpdateValue): string {
  switch (value.kind) {
    case 'expression':
      return oneLine(value.sql.text);
    case 'constant':
      return value.literal;
    case 'null':
      return 'NULL';
    case 'default':
      return 'its default';
    case 'redact':
      return 'redact (letters x, digits 0)';
    case 'hash':
      return `a keyed hash (key: param ${value.key})`;
  }
}
