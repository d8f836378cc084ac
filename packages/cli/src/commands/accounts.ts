import type { Command } from 'commander';
import { BadRequestError, KEY_ROLES, type Env } from '@liftoff/core';
import { connect } from '../connection.js';
import { printJson } from '../output.js';

interface Flags {
  json?: boolean;
  url?: string;
}
const opts = (cmd: Command): Command => cmd.option('--json', 'print JSON').option('-u, --url <url>', 'server URL');

/** `liftoff users|teams|keys`: accounts, needing a server admin key (an entity admin may mint agent keys). */
export function accountCommands(program: Command, env: Env): void {
  const users = program.command('users').description('users (each has a personal entity of the same name)');
  opts(users.command('create <name>').description('create a user and their personal entity')).action(
    async (name: string, flags: Flags) => {
      const r = await connect(flags, env).createUser(name);
      if (flags.json) return printJson(r);
      console.log(`created user ${name} with entity ${r.entity}; mint a key with "liftoff keys create --user ${name}"`);
    },
  );

  const teams = program.command('teams').description('teams: entities shared by their members');
  opts(teams.command('create <name>').description('create a team')).action(async (name: string, flags: Flags) => {
    const r = await connect(flags, env).createTeam(name);
    if (flags.json) return printJson(r);
    console.log(`created team ${r.entity}; add members with "liftoff teams add-member ${name} USER"`);
  });
  opts(teams.command('add-member <team> <user>').description('add a user to a team (admin of the team)')).action(
    async (team: string, user: string, flags: Flags) => {
      const r = await connect(flags, env).addMember(team, user);
      if (flags.json) return printJson(r);
      console.log(`team ${r.entity}: ${r.members.join(', ')}`);
    },
  );

  const keys = program.command('keys').description('API keys');
  opts(
    keys
      .command('create <name>')
      .description('mint a key: for a user (--user, role admin or member) or for agents of an entity (--agent)')
      .option('--user <user>', 'the user the key acts as')
      .option('--role <role>', 'admin or member (user keys)', 'member')
      .option('--agent', 'an agent key: pops and reports for one entity, administers nothing')
      .option('--entity <entity>', "the agent key's entity"),
  ).action(async (name: string, flags: Flags & { user?: string; role: string; agent?: boolean; entity?: string }) => {
    const role = flags.agent ? 'agent' : flags.role;
    if (!flags.agent && flags.role !== 'admin' && flags.role !== 'member')
      throw new BadRequestError(`--role must be admin or member, got "${flags.role}"; use --agent for agent keys.`);
    const r = await connect(flags, env).createKey({
      name,
      role: role as (typeof KEY_ROLES)[number],
      ...(flags.user ? { user: flags.user } : {}),
      ...(flags.entity ? { entity: flags.entity } : {}),
    });
    if (flags.json) return printJson(r);
    console.log(r.key);
    process.stderr.write(
      `key "${r.name}" (${r.role}${r.user ? ` of user ${r.user}` : ''}${r.entity ? ` for entity ${r.entity}` : ''}); it is shown only now\n`,
    );
  });
}
