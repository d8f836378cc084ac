import type { Command } from 'commander';
import { BadRequestError, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table, when } from '../output.js';
import { common, type Common } from './common.js';

/** A value larger than this is refused here already (the server takes 32 KiB). */
const MAX_STDIN = 64 * 1024;

/**
 * The secret's value from stdin, never from argv: argv shows in `ps`, shell history and CI logs. One trailing
 * newline (what `echo` and a terminal add) is dropped; anything else is kept as given.
 */
async function readValue(stdin: NodeJS.ReadStream): Promise<string> {
  if (stdin.isTTY) process.stderr.write('value (end with Ctrl-D): ');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN) throw new BadRequestError(`The value on stdin is larger than ${MAX_STDIN} bytes.`);
    chunks.push(chunk);
  }
  const value = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (!value) throw new BadRequestError('No value on stdin: pipe it in, e.g. "liftoff secret set NAME < token.txt".');
  return value;
}

export function secretCommands(program: Command, env: Env): void {
  const secret = program
    .command('secret')
    .description("an entity's secrets: values for jobs' --env NAME=secret:SECRET, never shown again");

  common(
    secret
      .command('set <name>')
      .description('create or replace a secret (an admin of the entity); the value is read from stdin'),
  ).action(async (name: string, flags: Common) => {
    const value = await readValue(process.stdin);
    const info = await (await connect(flags, env)).setSecret(flags.entity, name, value);
    if (flags.json) return printJson(info);
    console.log(`secret ${name} set in entity ${flags.entity}`);
  });

  common(secret.command('list').description("the entity's secret names and when they were set (never values)")).action(
    async (flags: Common) => {
      const { secrets } = await (await connect(flags, env)).listSecrets(flags.entity);
      if (flags.json) return printJson(secrets);
      console.log(
        table(
          ['NAME', 'UPDATED', 'BY'],
          secrets.map((s) => [s.name, when(s.updated_at), s.updated_by]),
        ),
      );
    },
  );

  common(secret.command('delete <name>').description('delete a secret (an admin of the entity)')).action(
    async (name: string, flags: Common) => {
      await (await connect(flags, env)).deleteSecret(flags.entity, name);
      if (!flags.json) console.log(`secret ${name} deleted from entity ${flags.entity}`);
    },
  );
}
