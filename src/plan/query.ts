import { itemLabel, type NodeKind, type Plan, type PlanNode, type ReportItem, type StepNode } from './nodes.js';

/**
 * Questions the runner, render and lint ask of a node, answered from its kind (never from SQL
 * text). A Record over every kind: a new kind that is not listed here is a type error.
 *
 *   setup      session settings and the report table: the first statements, before parameters
 *   creates    it creates one of the script's working tables (pg_temp)
 *   formatted  its SQL goes through the formatter (the rest the compiler lays out itself)
 */
const TRAITS: Record<NodeKind, { readonly setup?: true; readonly creates?: true; readonly formatted?: true }> = {
  begin: { formatted: true },
  'search-path': { setup: true },
  'lock-timeout': { setup: true },
  'report-reset': { setup: true },
  'report-table': { setup: true, creates: true },
  'settings-snapshot': { setup: true, creates: true },
  params: { creates: true },
  'read-only': { setup: true },
  'tables-guard': { formatted: true },
  'functions-guard': { formatted: true },
  'subject-table': { creates: true },
  lookup: { formatted: true },
  'subject-guard': { formatted: true },
  analyze: {},
  'set-table': { creates: true },
  'set-fill': {},
  expect: { formatted: true },
  verdict: { formatted: true },
  preserve: { formatted: true },
  'preserve-check': { formatted: true },
  step: { formatted: true },
  'wipe-reach-table': { creates: true },
  'wipe-reach': { formatted: true },
  wipe: {},
  'keep-check': { formatted: true },
  'settings-check': { formatted: true },
  commit: { formatted: true },
  report: { formatted: true },
};

export function isSetup(node: PlanNode): boolean {
  return TRAITS[node.kind].setup === true;
}

export function createsWorkingTable(node: PlanNode): boolean {
  return TRAITS[node.kind].creates === true;
}

export function isFormatted(node: PlanNode): boolean {
  return TRAITS[node.kind].formatted === true;
}

/** The statement removes rows: a step's DELETE or the wipe's TRUNCATE. */
export function removesRows(node: PlanNode): boolean {
  return node.kind === 'step' || node.kind === 'wipe';
}

export function steps(plan: Plan): StepNode[] {
  return plan.nodes.filter((n): n is StepNode => n.kind === 'step');
}

/** Every report item the plan can write, by the label its `item` column holds. */
export function reportItems(plan: Plan): ReadonlyMap<string, ReportItem> {
  const items: ReportItem[] = [];
  for (const node of plan.nodes) {
    if (node.kind === 'subject-guard') items.push({ kind: 'subject' });
    if (node.kind === 'step') items.push({ kind: 'step', step: node.step });
    if (node.kind === 'preserve') items.push({ kind: 'preserve', rule: node.rule });
    if (node.kind === 'expect') items.push({ kind: 'expect', expect: node.expect });
    if (node.kind === 'wipe-reach') items.push({ kind: 'wipe' }, { kind: 'keep' });
  }
  return new Map(items.map((item) => [itemLabel(item), item]));
}
