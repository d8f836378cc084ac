import type { Command } from 'commander';
import type { MemberRole, Members } from '@liftoff/core';
import { BadRequestError, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table } from '../output.js';
import { keyCommands } from './keys.js';

export interface Flags {
  json?: boolean;
  url?: string;
}
export const opts = (cmd: Command): Command =>
  cmd.option('--json', 'print JSON').option('-u, --url <url>', 'server URL');

/**
 * `liftoff users|teams|members|keys`: accounts. Users, teams and user keys need a server admin key; an entity's admin
 * manages its members and agent keys.
 */
export function accountCommands(program: Command, env: Env): void {
  const users = program.command('users').description('users (each has a personal entity of the same name)');
  opts(users.command('create <name>').description('create a user and their personal entity')).action(
    async (name: string, flags: Flags) => {
      const r = await (await connect(flags, env)).createUser(name);
      if (flags.json) return printJson(r);
      console.log(`created user ${name} with entity ${r.entity}; mint a key with "liftoff keys create --user ${name}"`);
    },
  );

  const teams = program.command('teams').description('teams: entities shared by their members');
  opts(teams.command('create <name>').description('create a team')).action(async (name: string, flags: Flags) => {
    const r = await (await connect(flags, env)).createTeam(name);
    if (flags.json) return printJson(r);
    console.log(`created team ${r.entity}; add members with "liftoff members add ${name} USER"`);
  });
  opts(
    teams
      .command('add-member <team> <user>')
      .description('add a user to a team (admin of the team); same as "liftoff members add"')
      .option('--role <role>', 'admin or member (default: admin for a team without one, else member)'),
  ).action(async (team: string, user: string, flags: Flags & { role?: string }) => {
    const r = await (await connect(flags, env)).addMember(team, user, parseRole(flags.role));
    if (flags.json) return printJson(r);
    printMembers(r);
  });

  memberCommands(program, env);
  keyCommands(program, env);
}

function parseRole(role: string | undefined): MemberRole | undefined {
  if (role === undefined || role === 'admin' || role === 'member') return role;
  throw new BadRequestError(`--role must be admin or member, got "${role}".`);
}

const printMembers = (r: Members) =>
  console.log(`team ${r.entity}: ${r.members.map((m) => `${m} (${r.roles?.[m] ?? '?'})`).join(', ') || 'no members'}`);

/** `liftoff members add|remove|list`: a team's members and their roles (an admin of the team changes them). */
function memberCommands(program: Command, env: Env): void {
  const members = program.command('members').description("a team's members and their roles (admin or member)");
  opts(
    members
      .command('add <team> <user>')
      .description("add a user to a team, or change a member's role")
      .option('--role <role>', 'admin or member (default: admin for a team without one, else member)'),
  ).action(async (team: string, user: string, flags: Flags & { role?: string }) => {
    const r = await (await connect(flags, env)).addMember(team, user, parseRole(flags.role));
    if (flags.json) return printJson(r);
    printMembers(r);
  });
  opts(members.command('remove <team> <user>').description('remove a user from a team (not its last admin)')).action(
    async (team: string, user: string, flags: Flags) => {
      const r = await (await connect(flags, env)).removeMember(team, user);
      if (flags.json) return printJson(r);
      printMembers(r);
    },
  );
  opts(members.command('list <entity>').description("an entity's members and their roles")).action(
    async (entity: string, flags: Flags) => {
      const r = await (await connect(flags, env)).listMembers(entity);
      if (flags.json) return printJson(r);
      console.log(
        table(
          ['USER', 'ROLE'],
          r.members.map((m) => [m, r.roles?.[m]]),
        ),
      );
    },
  );
}
