import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ConfigInvalidError, LiftoffClient, defaultDataDir, type Env } from '@liftoff/core';
import { detectUserSwitching, resolveAgentConfig } from '@liftoff/agent';
import { DEFAULT_ENTITY, DEFAULT_QUEUE, startServer, type RunningServer } from '@liftoff/server';
import { readCaFile } from '../connection.js';
import type { ServerFlags } from './server.js';
import { outputOptions } from './serverOutputs.js';
import { createAgent, onShutdown } from './shared.js';

// `liftoff server` and `liftoff up`'s work, loaded by their actions (commands/server.ts holds the flags and help).

/** The web UI's build: packages/web/dist next to this package (dist/commands/serverRun.js → ../../../web/dist). */
const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

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
  const outputs = outputOptions(flags, env);
  const server = await startServer({
    host: flags.host,
    port,
    dataDir,
    databaseUrl: flags.database ?? (env.LIFTOFF_DATABASE_URL || undefined),
    env,
    webDir: WEB_DIR,
    ...(flags.secretsKeyFile ? { secretsKeyFile: resolve(flags.secretsKeyFile) } : {}),
    tls,
    ...(outputs.artifactStore ? { artifactStore: outputs.artifactStore } : {}),
    // The embedded agent's job users pass through the data dir to their work dirs (they cannot list it).
    dataDirMode: sharedWithJobUsers ? 0o711 : 0o700,
    logger: pino({ level: flags.logLevel }, pino.destination(2)),
    settings: {
      leaseMs: seconds(flags.leaseSeconds, 'lease-seconds'),
      heartbeatIntervalMs: seconds(flags.heartbeatSeconds, 'heartbeat-seconds'),
      pollTimeoutMs: seconds(flags.pollTimeoutSeconds, 'poll-timeout-seconds'),
      ...runLease(flags, env, seconds),
      ...(outputs.outputLimits ? { outputLimits: outputs.outputLimits } : {}),
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

/** `liftoff server`. */
export async function runServer(flags: ServerFlags, env: Env): Promise<void> {
  const { server, dataDir } = await start(flags, env);
  console.log(`Liftoff server listening on ${server.url}`);
  console.log(`  web UI:    ${server.url}/ (sign in with the admin key)`);
  console.log(`  data dir:  ${dataDir}`);
  console.log(`  admin key: ${server.credentialsFile}${server.createdAdminKey ? ' (created now)' : ''}`);
  onShutdown(async () => {
    await server.close();
  });
}

/** `liftoff up`: the server and one embedded agent. */
export async function runUp(flags: ServerFlags & { maxJobs: string; caFile?: string }, env: Env): Promise<void> {
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
}
