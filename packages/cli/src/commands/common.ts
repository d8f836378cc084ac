import type { Command } from 'commander';

/** Options every command that talks to a server takes. */
export interface Common {
  entity: string;
  json?: boolean;
  url?: string;
  caFile?: string;
}

export const common = (cmd: Command): Command =>
  cmd
    .option('-e, --entity <name>', 'entity', 'default')
    .option('--json', 'print JSON')
    .option('-u, --url <url>', 'server URL')
    .option('--ca-file <file>', 'PEM file of a CA to trust for an https server (env LIFTOFF_CA_FILE)');
