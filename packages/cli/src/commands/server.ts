import type { Command } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORT, type Env } from '@liftoff/core/base';

export interface ServerFlags {
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
  artifactStore?: string;
  artifactS3Endpoint?: string;
  artifactS3Region?: string;
  maxRunOutputsMib?: string;
  maxEntityOutputsGib?: string;
}

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
    .option('--tls-key <file>', "the PEM private key of --tls-cert's certificate")
    .option(
      '--artifact-store <store>',
      'where run outputs go: datadir (default with SQLite), database (default with PostgreSQL) or s3://BUCKET/PREFIX (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; env LIFTOFF_ARTIFACT_STORE)',
    )
    .option(
      '--artifact-s3-endpoint <url>',
      'an S3-compatible server for --artifact-store s3:// (MinIO, moto, a VPC endpoint)',
    )
    .option(
      '--artifact-s3-region <region>',
      'the region of --artifact-store s3:// (default AWS_REGION, else us-east-1)',
    )
    .option('--max-run-outputs-mib <n>', 'most output bytes one run may store, in MiB (default 10240)')
    .option(
      '--max-entity-outputs-gib <n>',
      'most output bytes one entity may store over all its runs, in GiB (default 100)',
    );
}

export function serverCommands(program: Command, env: Env): void {
  addServerOptions(program.command('server').description('run the Liftoff server (HTTP API, queues, dispatch)')).action(
    async (flags: ServerFlags) => {
      const { runServer } = await import('./serverRun.js');
      await runServer(flags, env);
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
      // The server stack (fastify, kysely, the database drivers) and the agent load only for these two commands.
      const { runUp } = await import('./serverRun.js');
      await runUp(flags, env);
    });
}
