/**
 * src/graph on catalogs read from real schemas (test/fixtures/*.sql loaded into PostgreSQL):
 * catalog.sql (the app."User" <-> app."Team" cycle, a SET NULL self-reference, a partitioned
 * table), documenso-shaped (the self-referencing Folder ON DELETE CASCADE), pagila-shaped
 * (payment partitioned, its foreign keys declared on each partition).
 */
import { describe, expect, it } from 'vitest';
import { readCatalog, readForeignKeys, type Catalog } from '../src/catalog/catalog.js';
import { cascadeTargets, deleteReach, firedKeys } from '../src/graph/delete.js';
import { cycles, dependents, type Reached } from '../src/graph/graph.js';
import { dependencies } from '../src/graph/purge.js';
import { resolveTable } from '../src/graph/resolve.js';
import { truncateReach, WIPE_CASCADE_WALK, WIPE_CHILDREN_WALK, WIPE_REACH, WIPE_REACH_TABLE } from '../src/graph/truncate.js';
import { createTestDatabase, loadFixture, type TestDb } from './harness/db.js';

async function catalogOf(fixture: string): Promise<{ db: TestDb; catalog: Catalog }> {
  const db = await createTestDatabase(loadFixture(fixture));
  return { db, catalog: await readCatalog(db.sql) };
}

/** `table: key <- key` for a reached table, the keys from the start outward. */
const chain = (r: Reached) => `${r.table}: ${r.path.map((fk) => fk.name).join(' <- ')}`;

describe('graph: catalog.sql (a cycle, a SET NULL self-reference, a partitioned table)', () => {
  it('dependents: every table referencing app."User", nearest first, each once, with its chain', async () => {
    const { catalog } = await catalogOf('catalog');
    expect(dependents(catalog, 'app."User"').map(chain)).toEqual([
      'app."Team": Team_ownerId_fkey',
      'app."Post": Post_authorId_fkey',
      'app."Comment": Comment_authorId_fkey',
      'app.events: events_userId_fkey',
      'audit.event_notes: events_userId_fkey <- event_notes_event_id_event_at_fkey',
    ]);
    // Only SET NULL keys reach nothing further: the self-reference is not followed.
    expect(dependents(catalog, 'app."User"', (fk) => fk.onDelete === 'set null')).toEqual([]);
  });

  it('delete reach: CASCADE chains, SET NULL edges, NO ACTION blockers', async () => {
    const { catalog } = await catalogOf('catalog');
    const reach = deleteReach(catalog, 'app."User"');
    expect(reach.removed.map(chain)).toEqual(['app."Post": Post_authorId_fkey', 'app."Comment": Post_authorId_fkey <- Comment_postId_fkey']);
    expect(reach.nulled.map(chain)).toEqual(['app."User": User_invitedById_fkey']);
    // Comment is removed only where its post goes: its own key to User still blocks.
    expect(reach.blockers.map(chain).sort()).toEqual(['app."Comment": Comment_authorId_fkey', 'app."Team": Team_ownerId_fkey', 'app.events: events_userId_fkey']);
    expect(deleteReach(catalog, 'audit.settings')).toEqual({ removed: [], nulled: [], blockers: [] });
  });

  it('cycles: User <-> Team is one, the self-reference inside it among its keys', async () => {
    const { catalog } = await catalogOf('catalog');
    const found = cycles(catalog);
    expect(found.map((c) => ({ tables: c.tables, keys: c.keys.map((k) => k.name).sort() }))).toEqual([
      { tables: ['app."Team"', 'app."User"'], keys: ['Team_ownerId_fkey', 'User_invitedById_fkey', 'User_teamId_fkey'] },
    ]);
    // Without the nullable key that closes it there is no cycle at all.
    expect(cycles(catalog, (fk) => fk.name !== 'User_teamId_fkey').map((c) => c.tables)).toEqual([['app."User"']]);
  });

  it('truncate reach: TRUNCATE app."Team" CASCADE empties every referencing table, whatever its ON DELETE', async () => {
    const { catalog } = await catalogOf('catalog');
    const reach = truncateReach(catalog, ['app."Team"']);
    expect([...reach.values()].map((r) => `${r.from} <- ${chain(r)}`)).toEqual([
      'app."Team" <- app."User": User_teamId_fkey',
      'app."Team" <- app."Post": User_teamId_fkey <- Post_authorId_fkey',
      'app."Team" <- app."Comment": User_teamId_fkey <- Comment_authorId_fkey',
      'app."Team" <- app.events: User_teamId_fkey <- events_userId_fkey',
      'app."Team" <- audit.event_notes: User_teamId_fkey <- events_userId_fkey <- event_notes_event_id_event_at_fkey',
    ]);
    // Listed tables are not reported, and the shortest chain wins: Comment from Post directly.
    expect([...truncateReach(catalog, ['app."Team"', 'app."Post"']).entries()].map(([t, r]) => `${t} from ${r.from} (${r.path.length})`)).toEqual([
      'app."User" from app."Team" (1)',
      'app."Comment" from app."Post" (1)',
      'app.events from app."Team" (2)',
      'audit.event_notes from app."Team" (3)',
    ]);
  });

  it('the generated wipe walk (PL/pgSQL, at run time) empties the same tables as truncateReach, plus partitions', async () => {
    const { db, catalog } = await catalogOf('catalog');
    const walked = await db.sql.begin(async (tx) => {
      await tx.unsafe(WIPE_REACH_TABLE);
      await tx.unsafe(
        [
          'DO $$ DECLARE _added bigint; BEGIN',
          `INSERT INTO ${WIPE_REACH} SELECT t, 'listed', t::text FROM unnest(ARRAY['app."Team"']::regclass[]) AS t;`,
          ...WIPE_CHILDREN_WALK,
          ...WIPE_CASCADE_WALK,
          'END $$',
        ].join('\n'),
      );
      return tx.unsafe<{ name: string; partition: boolean }[]>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relispartition AS partition FROM ${WIPE_REACH} r JOIN pg_class c ON c.oid = r.relid JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1`,
      );
    });
    expect(walked.filter((r) => !r.partition).map((r) => r.name)).toEqual(['app."Team"', ...truncateReach(catalog, ['app."Team"']).keys()].sort());
    expect(walked.filter((r) => r.partition).map((r) => r.name)).toEqual(catalog.tables.get('app.events')!.partitions);
  });

  it('fired keys: what the runner reports a delete may change (read with the light key reader)', async () => {
    const { db } = await catalogOf('catalog');
    const keys = await readForeignKeys(db.sql);
    expect(firedKeys(keys, ['app."User"']).map((fk) => `${fk.table} ${fk.name} ${fk.onDelete}`).sort()).toEqual([
      'app."Comment" Comment_postId_fkey cascade',
      'app."Post" Post_authorId_fkey cascade',
      'app."User" User_invitedById_fkey set null',
    ]);
    expect(firedKeys(keys, ['app."Team"'])).toEqual([]);
  });

  it('resolveTable: one lookup for policies and command lines, a partition standing for its root', async () => {
    const { catalog } = await catalogOf('catalog');
    const found = (r: ReturnType<typeof resolveTable>) => (r.kind === 'found' ? r.table.qualified : r.kind);
    expect(found(resolveTable(catalog, { schema: 'app', name: 'User' }))).toBe('app."User"');
    expect(found(resolveTable(catalog, 'app."User"'))).toBe('app."User"');
    expect(found(resolveTable(catalog, { schema: 'app', name: 'events_2025' }))).toBe('app.events');
    expect(found(resolveTable(catalog, 'Post', { defaultSchema: 'app' }))).toBe('app."Post"');
    expect(found(resolveTable(catalog, 'event_notes', { anySchema: true }))).toBe('audit.event_notes');
    expect(resolveTable(catalog, 'User')).toEqual({ kind: 'missing', schema: 'public', name: 'User', schemaHasTables: false, hint: 'app.User' });
    expect(resolveTable(catalog, 'Usr', { defaultSchema: 'app' })).toMatchObject({ kind: 'missing', hint: 'User', schemaHasTables: true });
  });
});

describe('graph: documenso-shaped (Folder.parentId ON DELETE CASCADE)', () => {
  it('the self-reference is a cycle of one table; the other cycle runs through a SET NULL key', async () => {
    const { catalog } = await catalogOf('documenso-shaped');
    expect(cycles(catalog).map((c) => ({ tables: c.tables, keys: c.keys.map((k) => k.name).sort() }))).toEqual([
      { tables: ['public."Folder"'], keys: ['Folder_parentId_fkey'] },
      {
        tables: ['public."Organisation"', 'public."OrganisationEmail"', 'public."OrganisationGlobalSettings"'],
        keys: ['OrganisationEmail_organisationId_fkey', 'OrganisationGlobalSettings_emailId_fkey', 'Organisation_organisationGlobalSettingsId_fkey'],
      },
    ]);
    // Keys that make a delete fail or cascade: only the folder tree is left.
    expect(cycles(catalog, (fk) => fk.onDelete !== 'set null').map((c) => c.tables)).toEqual([['public."Folder"']]);
  });

  it('deleting a user: Folder removed once by cascade, its self-reference among the keys that reach it, Envelope detached', async () => {
    const { catalog } = await catalogOf('documenso-shaped');
    const reach = deleteReach(catalog, 'public."User"');
    expect(reach.removed.filter((r) => r.table === 'public."Folder"').map(chain)).toEqual(['public."Folder": Folder_userId_fkey']);
    expect(reach.nulled.map(chain).sort()).toEqual([
      'public."DocumentAuditLog": Envelope_userId_fkey <- DocumentAuditLog_envelopeId_fkey',
      'public."Envelope": Folder_userId_fkey <- Envelope_folderId_fkey',
      // The user's organisations go, their emails with them, and the settings that name one are detached.
      'public."OrganisationGlobalSettings": Organisation_ownerUserId_fkey <- OrganisationEmail_organisationId_fkey <- OrganisationGlobalSettings_emailId_fkey',
      'public."SiteSettings": SiteSettings_lastModifiedByUserId_fkey',
    ]);
    // Organisation's RESTRICT keys point away from the user: nothing blocks deleting one.
    expect(reach.blockers).toEqual([]);
    const folder = cascadeTargets(catalog, 'public."User"').find((t) => t.table === 'public."Folder"')!;
    expect(folder.via.map((fk) => fk.name).sort()).toEqual(['Folder_parentId_fkey', 'Folder_teamId_fkey', 'Folder_userId_fkey']);
    // Deeper than Team (User <- Organisation <- Team <- Folder), so its rows are copied before Team's.
    const targets = cascadeTargets(catalog, 'public."User"').map((t) => t.table);
    expect(targets.indexOf('public."Folder"')).toBeLessThan(targets.indexOf('public."Team"'));
    expect(targets).not.toContain('public."User"');
    // From a folder, the self-reference leads back to it: its own rows are a cascade target too.
    expect(cascadeTargets(catalog, 'public."Folder"').map((t) => `${t.table} ${t.via.map((fk) => fk.name).join(',')}`)).toEqual(['public."Folder" Folder_parentId_fkey']);
  });

  it('discover follows the CASCADE self-reference inside the DELETE and breaks nothing', async () => {
    const { catalog } = await catalogOf('documenso-shaped');
    const deps = dependencies(catalog, 'public."User"');
    expect([...deps.selfReferences.entries()].map(([t, fks]) => `${t} ${fks.map((fk) => fk.name).join(',')}`)).toEqual(['public."Folder" Folder_parentId_fkey']);
    expect(deps.broken).toEqual([]);
    expect(deps.order.at(-1)!.qualified).toBe('public."User"');
  });
});

describe('graph: pagila-shaped (payment partitioned, keys declared per partition)', () => {
  it('the six partitions\' copies of a key are one edge of the partitioned table', async () => {
    const { catalog } = await catalogOf('pagila-shaped');
    expect(catalog.foreignKeys.filter((fk) => fk.table === 'public.payment').map((fk) => `${fk.name} -> ${fk.references}`)).toEqual([
      'payment_p2022_01_customer_id_fkey -> public.customer',
      'payment_p2022_01_rental_id_fkey -> public.rental',
      'payment_p2022_01_staff_id_fkey -> public.staff',
    ]);
    expect(dependents(catalog, 'public.customer').map(chain)).toEqual([
      'public.rental: rental_customer_id_fkey',
      'public.payment: payment_p2022_01_customer_id_fkey',
    ]);
    expect(cycles(catalog)).toEqual([]);
  });

  it('delete and truncate reach, and a partition resolving to payment', async () => {
    const { catalog } = await catalogOf('pagila-shaped');
    const reach = deleteReach(catalog, 'public.customer');
    expect(reach.removed).toEqual([]);
    expect(reach.blockers.map(chain)).toEqual(['public.rental: rental_customer_id_fkey', 'public.payment: payment_p2022_01_customer_id_fkey']);
    expect([...truncateReach(catalog, ['public.staff']).values()].map(chain)).toEqual(['public.rental: rental_staff_id_fkey', 'public.payment: payment_p2022_01_staff_id_fkey']);
    const r = resolveTable(catalog, 'payment_p2022_03');
    expect(r.kind === 'found' && r.table.qualified).toBe('public.payment');
  });
});
