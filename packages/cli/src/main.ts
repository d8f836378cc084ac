import { Command, CommanderError } from 'commander';
import { LIFTOFF_VERSION, LiftoffError, type Env } from '@liftoff/core/base';
import { accountCommands } from './commands/accounts.js';
import { agentCommand } from './commands/agent.js';
import { agentControlCommands } from './commands/agentControl.js';
import { launchCommand } from './commands/launch.js';
import { agentsCommands, queueCommands } from './commands/manage.js';
import { queueAdminCommands } from './commands/queueOptions.js';
import { runsCommands } from './commands/runs.js';
import { secretCommands } from './commands/secrets.js';
import { jobCommands } from './commands/jobs.js';
import { sweepCommands } from './commands/sweeps.js';
import { serverCommands } from './commands/server.js';

export function buildProgram(env: Env): Command {
  const program = new Command('liftoff')
    .description('Self-hosted launcher for ML jobs: queues on a server, launch agents that run them.')
    .version(LIFTOFF_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  serverCommands(program, env);
  agentCommand(program, env);
  launchCommand(program, env);
  queueCommands(program, env);
  queueAdminCommands(program, env);
  agentsCommands(program, env);
  agentControlCommands(program, env);
  accountCommands(program, env);
  runsCommands(program, env);
  secretCommands(program, env);
  jobCommands(program, env);
  sweepCommands(program, env);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI; every failure is one clear message on stderr and a non-zero exit, never a stack trace. */
export async function main(argv: string[], env: Env): Promise<void> {
  const program = buildProgram(env);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Usage errors exit 2 like every other error (commander uses 1); --help and --version exit 0.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const message = e instanceof LiftoffError ? e.message : e instanceof Error ? e.message : String(e);
    process.stderr.write(`liftoff: error: ${message}\n`);
    if (env.LIFTOFF_DEBUG && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exitCode = e instanceof LiftoffError && e.code === 'UNAUTHENTICATED' ? 3 : 2;
  }
}
