import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import pino from 'pino';
import { ConfigInvalidError, DEFAULT_HOST, DEFAULT_PORT, LiftoffClient, defaultDataDir, type Env } from '@liftoff/core';
import { detectUserSwitching, resolveAgentConfig } from '@liftoff/agent';
import { DEFAULT_ENTITY, DEFAULT_QUEUE, startServer, type RunningServer } from '@liftoff/server';
import { readCaFile } from '../connection.js';
import { createAgent, onShutdown } from './shared.js';

interface ServerFlags {
  host: string;
  port: string;
  dataDir?: string;
  database?: string;
  leaseSeconds?: string;
  heartbeatSeconds?: string;
  pollTimeoutSeconds?: string;
  retentionDays?: string;
  retentionKeep?: string;
  maxRunLogMib?: string;
  runLostAfterSeconds?: string;
  logLevel: string;
  secretsKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** The web UI's build: packages/web/dist next to this package (dist/commands/server.js → ../../../web/dist). */
const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

function addServerOptions(cmd: Command): Command {
  return cmd
    .option('--host <host>', 'interface to listen on', DEFAULT_HOST)
    .option('--port <port>', 'port to listen on (0 = any free port)', String(DEFAULT_PORT))
    .option('--data-dir <dir>', 'where the database and code archives live (default ~/.local/share/liftoff)')
    .option(
      '--database <url>',
      'postgres://user:password@host/db to use PostgreSQL (several servers may share one) instead of SQLite in the data dir (env LIFTOFF_DATABASE_URL)',
    )
    .option(
      '--lease-seconds <s>',
      'how long a claimed item waits for its agent to start it before it returns to the queue',
      '60',
    )
    .option(
      '--heartbeat-seconds <s>',
      'agent heartbeat interval (an open poll counts); an agent silent for 3 intervals is KILLED',
      '30',
    )
    .option(
      '--poll-timeout-seconds <s>',
      'longest an agent poll is held open (at most 80% of the heartbeat interval)',
      '24',
    )
    .option('--retention-days <d>', 'delete ended items, their runs and logs this many days after they ended')
    .option('--retention-keep <n>', 'keep at most this many ended items per queue (the latest)')
    .option(
      '--max-run-log-mib <n>',
      'most log stored per run, in MiB (fractions allowed); past it a note says how much was dropped (env LIFTOFF_MAX_RUN_LOG_MIB, default 64)',
    )
    .option(
      '--run-lost-after-seconds <s>',
      'a run whose agent is silent this long ends lost (must exceed 3 heartbeat intervals; default 600, or 6 intervals when longer)',
    )
    .option('--log-level <level>', 'server log level (fatal, error, warn, info, debug)', 'warn')
    .option(
      '--secrets-key-file <path>',
      "the key entities' secrets are encrypted under, created on first start; replicas share one (env LIFTOFF_SECRETS_KEY_FILE, default <data dir>/secrets.key)",
    )
    .option('--tls-cert <file>', 'serve https with this PEM certificate (chain); needs --tls-key')
    .option('--tls-key <file>', "the PEM private key of --tls-cert's certificate");
}

/** --tls-cert and --tls-key: both or neither, each a readable PEM file. */
function tlsFiles(flags: ServerFlags): { cert: string; key: string } | undefined {
  if (!flags.tlsCert && !flags.tlsKey) return undefined;
  if (!flags.tlsCert || !flags.tlsKey)
    throw new ConfigInvalidError('The TLS options', ['--tls-cert and --tls-key go together: give both files']);
  const read = (path: string, flag: string, marker: string) => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new ConfigInvalidError(`${flag} ${path}`, [
        `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      ]);
    }
    if (!text.includes(marker)) throw new ConfigInvalidError(`${flag} ${path}`, [`holds no PEM ${marker}`]);
    return text;
  };
  return {
    cert: read(flags.tlsCert, '--tls-cert', 'CERTIFICATE-----'),
    key: read(flags.tlsKey, '--tls-key', 'PRIVATE KEY-----'),
  };
}

async function start(
  flags: ServerFlags,
  env: Env,
  { sharedWithJobUsers = false }: { sharedWithJobUsers?: boolean } = {},
): Promise<{ server: RunningServer; dataDir: string; tls: { cert: string; key: string } | undefined }> {
  const dataDir = resolve(flags.dataDir ?? defaultDataDir(env));
  const tls = tlsFiles(flags);
  const seconds = (v: string | undefined, name: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds, got "${v}"`);
    return Math.round(n * 1000);
  };
  const count = (v: string, name: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got "${v}"`);
    return n;
  };
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be a port number, got "${flags.port}"`);
  const server = await startServer({
    host: flags.host,
    port,
    dataDir,
    databaseUrl: flags.database ?? (env.LIFTOFF_DATABASE_URL || undefined),
    env,
    webDir: WEB_DIR,
    ...(flags.secretsKeyFile ? { secretsKeyFile: resolve(flags.secretsKeyFile) } : {}),
    tls,
    // The embedded agent's job users pass through the data dir to their work dirs (they cannot list it).
    dataDirMode: sharedWithJobUsers ? 0o711 : 0o700,
    logger: pino({ level: flags.logLevel }, pino.destination(2)),
    settings: {
      leaseMs: seconds(flags.leaseSeconds, 'lease-seconds'),
      heartbeatIntervalMs: seconds(flags.heartbeatSeconds, 'heartbeat-seconds'),
      pollTimeoutMs: seconds(flags.pollTimeoutSeconds, 'poll-timeout-seconds'),
      ...runLease(flags, env, seconds),
      retention: {
        maxAgeMs: flags.retentionDays === undefined ? null : seconds(flags.retentionDays, 'retention-days') * 86_400,
        keepPerQueue: flags.retentionKeep === undefined ? null : count(flags.retentionKeep, 'retention-keep'),
      },
    },
  });
  return { server, dataDir, tls };
}

/** The per-run log cap and the run lease; absent flags keep the server's defaults (context.ts). */
function runLease(
  flags: ServerFlags,
  env: Env,
  seconds: (v: string | undefined, name: string) => number,
): { maxRunLogBytes?: number; runLostAfterMs?: number } {
  const out: { maxRunLogBytes?: number; runLostAfterMs?: number } = {};
  const mib = flags.maxRunLogMib ?? (env.LIFTOFF_MAX_RUN_LOG_MIB || undefined);
  if (mib !== undefined) {
    const n = Number(mib);
    if (!Number.isFinite(n) || n <= 0 || n > 1 << 20)
      throw new Error(`--max-run-log-mib must be a positive number of MiB (at most 1048576), got "${mib}"`);
    out.maxRunLogBytes = Math.max(1, Math.round(n * 1024 * 1024));
  }
  if (flags.runLostAfterSeconds !== undefined)
    out.runLostAfterMs = seconds(flags.runLostAfterSeconds, 'run-lost-after-seconds');
  return out;
}

export function serverCommands(program: Command, env: Env): void {
  addServerOptions(program.command('server').description('run the Liftoff server (HTTP API, queues, dispatch)')).action(
    async (flags: ServerFlags) => {
      const { server, dataDir } = await start(flags, env);
      console.log(`Liftoff server listening on ${server.url}`);
      console.log(`  web UI:    ${server.url}/ (sign in with the admin key)`);
      console.log(`  data dir:  ${dataDir}`);
      console.log(`  admin key: ${server.credentialsFile}${server.createdAdminKey ? ' (created now)' : ''}`);
      onShutdown(async () => {
        await server.close();
      });
    },
  );

  addServerOptions(
    program
      .command('up')
      .description(
        'run the server plus one embedded launch agent polling queue "default" with the local-process runner',
      ),
  )
    .option('-j, --max-jobs <n>', 'embedded agent: jobs at once (-1 = unlimited)', '4')
    .option('--ca-file <file>', "embedded agent: PEM file of the CA of --tls-cert's certificate (env LIFTOFF_CA_FILE)")
    .action(async (flags: ServerFlags & { maxJobs: string; caFile?: string }) => {
      const switching = detectUserSwitching();
      const { server, dataDir, tls } = await start(flags, env, {
        sharedWithJobUsers: switching.missing.length === 0,
      });
      // An agent key of its entity, held in this process only: not the admin key, which jobs must never reach.
      const apiKey = await server.mintAgentKey('embedded-agent', DEFAULT_ENTITY);
      // Over TLS the embedded agent trusts the CA file given, else the server's own certificate (self-signed).
      const caFile = flags.caFile ?? (env.LIFTOFF_CA_FILE || undefined);
      const ca = caFile ? readCaFile(caFile) : tls?.cert;
      const client = new LiftoffClient({ baseUrl: server.url, apiKey, ca });
      const config = resolveAgentConfig(
        { queues: [DEFAULT_QUEUE], maxJobs: Number(flags.maxJobs), config: undefined, entity: DEFAULT_ENTITY },
        { ...env, LIFTOFF_ENTITY: undefined, LIFTOFF_LAUNCH_MAX_JOBS: undefined },
      );
      // An ordinary user's laptop: jobs run as that user (the agent warns). Root gets a user per job, as everywhere.
      if (config.file['run-as'] === undefined && switching.missing.length) {
        config.file = { ...config.file, 'run-as': 'agent' };
      }
      const { agent, identity } = createAgent({
        client,
        config,
        env,
        dataDir,
        name: `${hostname()}-embedded`,
        logger: pino({ level: flags.logLevel }, pino.destination(2)),
        say: (line) => console.log(`[agent] ${line}`),
      });
      try {
        await agent.start();
      } catch (err) {
        // Refused at start (e.g. job users could not reach their work dirs): nothing keeps running.
        await server.close();
        throw err;
      }
      console.log(`Liftoff is up at ${server.url}`);
      console.log(`  web UI:    ${server.url}/ (sign in with the admin key)`);
      console.log(`  data dir:  ${dataDir}`);
      console.log(`  admin key: ${server.credentialsFile}${server.createdAdminKey ? ' (created now)' : ''}`);
      console.log(`  agent:     ${identity.name} polling queue "${DEFAULT_QUEUE}" (local-process)`);
      console.log('Try it (from the repository root, in another terminal):');
      console.log(
        `  npx liftoff launch -q ${DEFAULT_QUEUE} --code examples/hello -E "python3 train.py" --wait -- --epochs 3`,
      );
      onShutdown(async () => {
        await agent.stop();
        await server.close();
      });
    });
}
