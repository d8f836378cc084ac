import type { Command } from 'commander';

/** Options every command that talks to a server takes. */
export interface Common {
  entity: string;
  json?: boolean;
  url?: string;
}

export const common = (cmd: Command): Command =>
  cmd
    .option('-e, --entity <name>', 'entity', 'default')
    .option('--json', 'print JSON')
    .option('-u, --url <url>', 'server URL');
