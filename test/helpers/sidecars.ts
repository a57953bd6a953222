/**
 * Real services for the outbox tests: a redis-server of its own (a free port, a temp dir, no
 * persistence) and a node http server whose answers a test scripts. No mocks.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export interface Redis {
  readonly url: string;
  readonly client: ReturnType<typeof createClient>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<Redis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const client = createClient({ url, socket: { reconnectStrategy: (n) => (n > 50 ? new Error('redis-server did not start') : 50) } });
  client.on('error', () => {});
  await client.connect();
  await client.ping();
  return {
    url,
    client,
    async stop() {
      await client.quit().catch(() => {});
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
}

export interface Api {
  readonly url: string;
  readonly seen: Seen[];
  /** How the next request is answered: a status, or a function that may hold the response. */
  answer: (req: IncomingMessage, res: ServerResponse, n: number) => void;
  stop(): Promise<void>;
}

export async function startApi(): Promise<Api> {
  const seen: Seen[] = [];
  const api: Api = {
    url: '',
    seen,
    answer: (_req, res) => void res.writeHead(200).end('{}'),
    stop: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    api.answer(req, res, seen.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (api as { url: string }).url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  // A held response must not keep the server from closing.
  (api as { stop: () => Promise<void> }).stop = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return api;
}
