import { itemLabel, type AnyStepNode, type NodeKind, type Plan, type PlanNode, type ReportItem, type StepNode, type UpdateNode } from './nodes.js';

/**
 * Questions the runner, render and lint ask of a node, answered from its kind (never from SQL
 * text). A Record over every kind: a new kind that is not listed here is a type error.
 *
 *   setup      session settings and the report table: the first statements, before parameters
 *   creates    it creates one of the script's working tables (pg_temp)
 */
const TRAITS: Record<NodeKind, { readonly setup?: true; readonly creates?: true }> = {
  begin: {},
  'apply-only': {},
  'search-path': { setup: true },
  'lock-timeout': { setup: true },
  'report-reset': { setup: true },
  'report-table': { setup: true, creates: true },
  'raise-function': { setup: true },
  'settings-snapshot': { setup: true, creates: true },
  params: { creates: true },
  'read-only': { setup: true },
  'tables-guard': {},
  'functions-guard': {},
  'subject-table': { creates: true },
  lookup: {},
  'subject-count': {},
  'subject-guard': {},
  analyze: {},
  'set-table': { creates: true },
  'set-fill': {},
  expect: {},
  verdict: {},
  preserve: {},
  'preserve-check': {},
  step: {},
  update: {},
  'wipe-reach-table': { creates: true },
  'wipe-reach': {},
  wipe: {},
  'keep-check': {},
  'settings-check': {},
  outbox: {},
  commit: {},
  report: {},
};

export function isSetup(node: PlanNode): boolean {
  return TRAITS[node.kind].setup === true;
}

export function createsWorkingTable(node: PlanNode): boolean {
  return TRAITS[node.kind].creates === true;
}

/** The statement changes rows: a step's DELETE or UPDATE, or the wipe's TRUNCATE. */
export function removesRows(node: PlanNode): boolean {
  return node.kind === 'step' || node.kind === 'update' || node.kind === 'wipe';
}

/** Every step, delete or update, in order. */
export function allSteps(plan: Plan): AnyStepNode[] {
  return plan.nodes.filter((n): n is AnyStepNode => n.kind === 'step' || n.kind === 'update');
}

/** The update steps (anonymize:, detach:). */
export function updates(plan: Plan): UpdateNode[] {
  return plan.nodes.filter((n): n is UpdateNode => n.kind === 'update');
}

export function steps(plan: Plan): StepNode[] {
  return plan.nodes.filter((n): n is StepNode => n.kind === 'step');
}

/** Every report item the plan can write, by the label its `item` column holds. */
export function reportItems(plan: Plan): ReadonlyMap<string, ReportItem> {
  const items: ReportItem[] = [];
  for (const node of plan.nodes) {
    if (node.kind === 'subject-guard') items.push({ kind: 'subject' });
    if (node.kind === 'step' || node.kind === 'update') items.push({ kind: 'step', step: node.step });
    if (node.kind === 'preserve') items.push({ kind: 'preserve', rule: node.rule });
    if (node.kind === 'expect') items.push({ kind: 'expect', expect: node.expect });
    if (node.kind === 'wipe-reach') items.push({ kind: 'wipe' }, { kind: 'keep' });
  }
  return new Map(items.map((item) => [itemLabel(item), item]));
}
