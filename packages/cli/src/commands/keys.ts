import type { Command } from 'commander';
import type { KEY_ROLES } from '@liftoff/core';
import { BadRequestError, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table, when } from '../output.js';
import { opts, type Flags } from './accounts.js';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * "30d", "12h", "90m", "2w" in milliseconds. Hand-written: four units of one number, not worth a dependency (and
 * "ms"-style parsers accept forms such as "1.5 years" we would rather refuse).
 */
export function parseExpiresIn(text: string): number {
  const m = /^(\d{1,6})([mhdw])$/.exec(text.trim());
  const unit = m?.[2] ? UNIT_MS[m[2]] : undefined;
  if (!m?.[1] || unit === undefined || Number(m[1]) === 0)
    throw new BadRequestError(`--expires-in must be a positive number with m, h, d or w (e.g. 30d), got "${text}".`);
  return Number(m[1]) * unit;
}

/** `liftoff keys create|list|revoke`. */
export function keyCommands(program: Command, env: Env): void {
  const keys = program.command('keys').description('API keys');
  opts(
    keys
      .command('create <name>')
      .description('mint a key: for a user (--user, role admin or member) or for agents of an entity (--agent)')
      .option('--user <user>', 'the user the key acts as')
      .option('--role <role>', 'admin or member (user keys)', 'member')
      .option('--agent', 'an agent key: pops and reports for one entity, administers nothing')
      .option('--entity <entity>', "the agent key's entity")
      .option('--expires-in <duration>', 'refuse the key after this long, e.g. 30d, 12h, 2w (default: never)'),
  ).action(
    async (
      name: string,
      flags: Flags & { user?: string; role: string; agent?: boolean; entity?: string; expiresIn?: string },
    ) => {
      const role = flags.agent ? 'agent' : flags.role;
      if (!flags.agent && flags.role !== 'admin' && flags.role !== 'member')
        throw new BadRequestError(`--role must be admin or member, got "${flags.role}"; use --agent for agent keys.`);
      const expiresIn = flags.expiresIn === undefined ? undefined : parseExpiresIn(flags.expiresIn);
      const r = await (
        await connect(flags, env)
      ).createKey({
        name,
        role: role as (typeof KEY_ROLES)[number],
        ...(flags.user ? { user: flags.user } : {}),
        ...(flags.entity ? { entity: flags.entity } : {}),
        ...(expiresIn !== undefined ? { expires_at: Date.now() + expiresIn } : {}),
      });
      if (flags.json) return printJson(r);
      console.log(r.key);
      process.stderr.write(
        `key "${r.name}" (${r.role}${r.user ? ` of user ${r.user}` : ''}${r.entity ? ` for entity ${r.entity}` : ''}${r.expires_at ? `, expires ${when(r.expires_at)}` : ''}); it is shown only now\n`,
      );
    },
  );
  opts(
    keys
      .command('list')
      .description("keys you can see: yours, your entities' agent keys if you administer them, all for a server admin"),
  ).action(async (flags: Flags) => {
    const { keys: list } = await (await connect(flags, env)).listKeys();
    if (flags.json) return printJson(list);
    console.log(
      table(
        ['ID', 'NAME', 'ROLE', 'USER', 'ENTITY', 'CREATED', 'LAST USED', 'EXPIRES'],
        list.map((k) => [
          k.id,
          k.name,
          k.role,
          k.user,
          k.entity,
          when(k.created_at),
          when(k.last_used_at),
          when(k.expires_at),
        ]),
      ),
    );
  });
  opts(keys.command('revoke <key>').description('revoke a key by name or id; it is refused from then on')).action(
    async (key: string, flags: Flags) => {
      await (await connect(flags, env)).revokeKey(key);
      if (flags.json) return printJson({ revoked: key });
      console.log(`revoked key ${key}`);
    },
  );
}
