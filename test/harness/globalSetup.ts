/**
 * Vitest global setup: provides `pgAdminUrl`, the URL of a role allowed to
 * CREATE DATABASE, to every test worker (read it with `inject('pgAdminUrl')`).
 *
 * Server selection, in order:
 *   1. TEST_DATABASE_URL  - an existing server; nothing is started.
 *   2. TEST_PG_IMAGE      - a Testcontainers PostgreSQL container (needs Docker).
 *   3. otherwise          - an embedded PostgreSQL in a fresh temp dir (./embedded.ts; as root,
 *                            it runs as the `postgres` OS user).
 */
import type { TestProject } from 'vitest/node';
import { EmbeddedStartError, startEmbedded } from './embedded.js';

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

  const server = await startEmbedded().catch((e: unknown) => {
    // One line that says why and what to do, not a stack trace of the harness.
    if (e instanceof EmbeddedStartError) e.stack = `${e.name}: ${e.message}`;
    throw e;
  });
  announce(`using embedded PostgreSQL on 127.0.0.1:${server.port} (binaries in ${server.binaries})`);
  project.provide('pgAdminUrl', server.url);
  return server.stop;
}
