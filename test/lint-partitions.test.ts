/**
 * purgekit lint on a pagila-shaped schema (test/fixtures/pagila-shaped.sql): foreign keys and
 * indexes declared on each partition of payment.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { discoverCommand } from '../src/commands/discover.js';
import { lintCommand } from '../src/commands/lint.js';
import type { LintDiagnostic } from '../src/lint/diagnostic.js';
import { loadParser } from '../src/sql/parser.js';
import { createTestDatabase, loadFixture } from './harness/db.js';

beforeAll(() => loadParser());

describe('lint on partitions', () => {
  it('PK-L006 on a partitioned table: one warning per key, the fix summarised (in full with --verbose)', async () => {
    const db = await createTestDatabase(loadFixture('pagila-shaped'));
    const { yaml } = await discoverCommand({ connection: db.url, table: 'customer', key: 'customer_id' });
    const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-partitions-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'purge-customer.yaml'), yaml);
    const lint = async (verbose: boolean) => {
      const { output } = await lintCommand({ paths: [dir], connection: db.url, strict: false, reporter: 'json', verbose });
      return (JSON.parse(output) as { diagnostics: LintDiagnostic[] }).diagnostics.filter((d) => d.rule === 'PK-L006');
    };
    const short = await lint(false);
    // One per key of the partitioned table, not one per partition's copy of it.
    expect(short.map((d) => d.message.slice(0, d.message.indexOf(','))).sort()).toEqual([
      'public.payment has no index on (customer_id)',
      'public.payment has no index on (rental_id)',
      'public.payment has no index on (staff_id)', // the opt-in step on staff
      'public.rental has no index on (staff_id)',
    ]);
    const customer = short.find((d) => d.message.includes('(customer_id)'))!.message;
    expect(customer).toContain('fix: CREATE INDEX payment_customer_id_idx ON ONLY public.payment (customer_id); CREATE INDEX CONCURRENTLY payment_p2022_01_customer_id_idx ON public.payment_p2022_01 (customer_id); ALTER INDEX public.payment_customer_id_idx ATTACH PARTITION public.payment_p2022_01_customer_id_idx; And the same for 5 more partitions of public.payment (purgekit lint --verbose prints every statement).');
    expect(customer.length).toBeLessThan(700);

    const full = (await lint(true)).find((d) => d.message.includes('(customer_id)'))!.message;
    expect(full.match(/CREATE INDEX CONCURRENTLY/g)).toHaveLength(6);
    expect(full).toContain('ATTACH PARTITION public.payment_p2022_06_customer_id_idx;');
  });
});
