import type { Command } from 'commander';
import { BadRequestError, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson } from '../output.js';

/** `liftoff agents stop ID [--finish|--stop-runs]`: the agent learns it on its open poll and exits KILLED. */
export function agentControlCommands(program: Command, env: Env): void {
  const agents = program.commands.find((c) => c.name() === 'agents');
  if (!agents) return;
  agents
    .command('stop <id>')
    .description('stop an agent remotely: it stops (or, with --finish, finishes) its runs and exits KILLED')
    .option('--finish', 'take no new work and let running jobs end, then exit')
    .option('--stop-runs', 'stop running jobs now (SIGTERM, then SIGKILL after the grace period), then exit (default)')
    .option('--json', 'print JSON')
    .option('-u, --url <url>', 'server URL')
    .action(async (id: string, flags: { finish?: boolean; stopRuns?: boolean; json?: boolean; url?: string }) => {
      if (flags.finish && flags.stopRuns) throw new BadRequestError('Give one of --finish and --stop-runs, not both.');
      const mode = flags.finish ? 'finish' : 'stop-runs';
      const agent = await (await connect(flags, env)).stopAgent(id, { mode });
      if (flags.json) return printJson(agent);
      console.log(
        `asked agent ${agent.name} (${agent.id}) to stop (${mode}); "liftoff agents list" shows KILLED once it has`,
      );
    });
}
