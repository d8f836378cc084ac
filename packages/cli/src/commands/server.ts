import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { DEFAULT_HOST, DEFAULT_PORT, LiftoffClient, defaultDataDir, type Env } from '@liftoff/core';
import { LaunchAgent, agentIdentity, resolveAgentConfig } from '@liftoff/agent';
import { DEFAULT_QUEUE, startServer, type RunningServer } from '@liftoff/server';
import { jobEnvironment, onShutdown } from './shared.js';

interface ServerFlags {
  host: string;
  port: string;
  dataDir?: string;
  leaseSeconds?: string;
  heartbeatSeconds?: string;
  pollTimeoutSeconds?: string;
  logLevel: string;
}

function addServerOptions(cmd: Command): Command {
  return cmd
    .option('--host <host>', 'interface to listen on', DEFAULT_HOST)
    .option('--port <port>', 'port to listen on (0 = any free port)', String(DEFAULT_PORT))
    .option('--data-dir <dir>', 'where the database and code archives live (default ~/.local/share/liftoff)')
    .option(
      '--lease-seconds <s>',
      'how long a claimed item waits for its agent to start it before it returns to the queue',
      '60',
    )
    .option('--heartbeat-seconds <s>', 'agent heartbeat interval; an agent silent for 3 intervals is KILLED', '10')
    .option('--poll-timeout-seconds <s>', 'longest an agent poll is held open', '30')
    .option('--log-level <level>', 'server log level (fatal, error, warn, info, debug)', 'warn');
}

async function start(flags: ServerFlags, env: Env): Promise<{ server: RunningServer; dataDir: string }> {
  const dataDir = resolve(flags.dataDir ?? defaultDataDir(env));
  const seconds = (v: string | undefined, name: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds, got "${v}"`);
    return Math.round(n * 1000);
  };
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be a port number, got "${flags.port}"`);
  const server = await startServer({
    host: flags.host,
    port,
    dataDir,
    env,
    logger: pino({ level: flags.logLevel }, pino.destination(2)),
    settings: {
      leaseMs: seconds(flags.leaseSeconds, 'lease-seconds'),
      heartbeatIntervalMs: seconds(flags.heartbeatSeconds, 'heartbeat-seconds'),
      pollTimeoutMs: seconds(flags.pollTimeoutSeconds, 'poll-timeout-seconds'),
    },
  });
  return { server, dataDir };
}

export function serverCommands(program: Command, env: Env): void {
  addServerOptions(program.command('server').description('run the Liftoff server (HTTP API, queues, dispatch)')).action(
    async (flags: ServerFlags) => {
      const { server, dataDir } = await start(flags, env);
      console.log(`Liftoff server listening on ${server.url}`);
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
    .action(async (flags: ServerFlags & { maxJobs: string }) => {
      const { server, dataDir } = await start(flags, env);
      const client = new LiftoffClient({ baseUrl: server.url, apiKey: await server.mintKey('embedded-agent') });
      const config = resolveAgentConfig(
        { queues: [DEFAULT_QUEUE], maxJobs: Number(flags.maxJobs), config: undefined, entity: 'default' },
        { ...env, LIFTOFF_ENTITY: undefined, LIFTOFF_LAUNCH_MAX_JOBS: undefined },
      );
      const host = hostname();
      const identity = agentIdentity({
        name: `${host}-embedded`,
        hostname: host,
        entity: config.entity,
        queues: config.queues,
        dataDir,
      });
      const agent = new LaunchAgent({
        client,
        config,
        identity,
        hostname: host,
        dataDir,
        jobEnv: jobEnvironment(env),
        logger: pino({ level: flags.logLevel }, pino.destination(2)),
        say: (line) => console.log(`[agent] ${line}`),
      });
      await agent.start();
      console.log(`Liftoff is up at ${server.url}`);
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
