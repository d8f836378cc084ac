import type { Command } from 'commander';
import { defaultAgentConfigPath, defaultDataDir, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { collect } from '../runConfigFlags.js';

interface AgentCliFlags {
  queue?: string[];
  entity?: string;
  maxJobs?: string;
  config?: string;
  logFile?: string;
  verbose: number;
  url?: string;
  caFile?: string;
  name?: string;
  dataDir?: string;
  pollInterval?: string;
}

const count = (_v: string, prev: number) => prev + 1;

export function agentCommand(program: Command, env: Env): void {
  program
    .command('launch-agent')
    .description('run a launch agent: poll queues, run their jobs, report how they end')
    .option('-q, --queue <name>', "queue to poll (repeatable); replaces the config file's queues", collect)
    .option('-e, --entity <name>', 'entity owning the queues (default: config, LIFTOFF_ENTITY, else "default")')
    .option('-j, --max-jobs <n>', 'jobs at once; -1 = unlimited (default 1)')
    .option('-c, --config <path>', `agent config YAML (default ${defaultAgentConfigPath(env)})`)
    .option('-l, --log-file <path>', 'write the agent\'s JSON log here ("-" = stdout)')
    .option('-v, --verbose', 'more logging (repeat for more)', count, 0)
    .option('-u, --url <url>', 'server URL (default LIFTOFF_BASE_URL, else the credentials file)')
    .option('--ca-file <file>', 'PEM file of a CA to trust for an https server (env LIFTOFF_CA_FILE)')
    .option('--name <name>', 'stable agent name; its identity across restarts')
    .option(
      '--poll-interval <seconds>',
      'poll every N seconds instead of holding a long-poll open (as W&B Launch does)',
    )
    .option('--data-dir <dir>', 'where work directories and the agent identity live (default ~/.local/share/liftoff)')
    .action(async (flags: AgentCliFlags) => {
      // The agent, its logger and its runners load only for this command.
      const [
        { assertConfigSupported, awsClientSettings, azureClientSettings, gcpClientSettings, resolveAgentConfig },
        { default: pino },
        { createAgent, onShutdown },
      ] = await Promise.all([import('@liftoff/agent'), import('pino'), import('./shared.js')]);
      const config = resolveAgentConfig(
        {
          queues: flags.queue,
          entity: flags.entity,
          maxJobs: flags.maxJobs === undefined ? undefined : Number(flags.maxJobs),
          config: flags.config,
          verbosity: flags.verbose || undefined,
          name: flags.name,
          ...(flags.pollInterval !== undefined ? { pollIntervalSeconds: Number(flags.pollInterval) } : {}),
        },
        env,
      );
      assertConfigSupported(config.file, config.source ?? 'the agent configuration');
      // The CLI owns the process environment: the AWS settings (region, one shared credential provider, endpoints)
      // are made from it here, once, and handed to the agent; its plugins read no environment themselves.
      const awsEnv = config.file.environment?.type === 'aws' ? config.file.environment : undefined;
      const aws = awsEnv ? await awsClientSettings({ ...awsEnv, type: 'aws' }, env) : undefined;
      // The same for Google Cloud: project, region, one ADC auth client, endpoint overrides (environments/gcp).
      const gcpEnv = config.file.environment?.type === 'gcp' ? config.file.environment : undefined;
      const gcp = gcpEnv ? await gcpClientSettings({ ...gcpEnv, type: 'gcp' }, env) : undefined;
      // And Azure: one credential chain made from this environment, endpoint overrides, extra CAs (environments/azure).
      const azureEnv = config.file.environment?.type === 'azure' ? config.file.environment : undefined;
      const azure = azureEnv ? await azureClientSettings({ ...azureEnv, type: 'azure' }, env) : undefined;
      const level = config.verbosity >= 2 ? 'debug' : config.verbosity === 1 || flags.logFile ? 'info' : 'warn';
      const destination =
        flags.logFile === '-'
          ? pino.destination(1)
          : flags.logFile
            ? pino.destination({ dest: flags.logFile, mkdir: true })
            : pino.destination(2);
      const logger = pino({ level, base: { agent: config.name } }, destination);
      const client = await connect({ url: flags.url, caFile: flags.caFile }, env);
      const dataDir = flags.dataDir ?? defaultDataDir(env);
      console.log('Starting launch agent');
      const { agent } = createAgent({
        client,
        config,
        env,
        dataDir,
        logger,
        say: (line) => console.log(line),
        ...(aws ? { aws } : {}),
        ...(gcp ? { gcp } : {}),
        ...(azure ? { azure } : {}),
      });
      // The signal handler goes in before start-up finishes: a SIGTERM right after "polling" must still stop cleanly.
      const started = agent.start();
      onShutdown(async () => {
        await started.catch(() => undefined);
        await agent.stop();
      });
      await started;
      await agent.wait();
    });
}
