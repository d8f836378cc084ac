import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  BadRequestError,
  PRIORITIZATION_MODES,
  TemplateVariables,
  type Env,
  type PrioritizationMode,
  type UpdateQueueBody,
} from '@liftoff/core';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import { common, type Common } from './common.js';

/** The queue switches shared by `queue create` and `queue update`. */
export interface QueueSwitches {
  prioritization?: string;
  agingSeconds?: string;
  maxConcurrency?: string;
}

export function addQueueSwitches(cmd: Command): Command {
  return cmd
    .option('--prioritization <mode>', `DISABLED (only the default priority) or V0 (serve higher priorities first)`)
    .option('--aging-seconds <s|none>', 'with V0: a waiting item moves up one priority level per this many seconds')
    .option('--max-concurrency <n|none>', 'most items of this queue claimed, starting or running at once');
}

/** "none" clears a limit; anything else must be a positive integer. */
export function limitFlag(flag: string, v: string | undefined): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === 'none') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new BadRequestError(`${flag} must be a positive integer or "none", got "${v}".`);
  return n;
}

export function queueSwitches(f: QueueSwitches): UpdateQueueBody {
  const out: UpdateQueueBody = {};
  if (f.prioritization !== undefined) {
    const mode = f.prioritization.toUpperCase();
    if (!(PRIORITIZATION_MODES as readonly string[]).includes(mode))
      throw new BadRequestError(
        `--prioritization must be one of ${PRIORITIZATION_MODES.join(', ')}, got "${f.prioritization}".`,
      );
    out.prioritization_mode = mode as PrioritizationMode;
  }
  const aging = limitFlag('--aging-seconds', f.agingSeconds);
  if (aging !== undefined) out.aging_seconds = aging;
  const max = limitFlag('--max-concurrency', f.maxConcurrency);
  if (max !== undefined) out.max_concurrency = max;
  return out;
}

/** `--template-variables`: inline JSON or a JSON file, `{name: {schema: {type, enum, minimum, maximum, default}}}`. */
export function readTemplateVariables(v: string | undefined): TemplateVariables | undefined {
  if (v === undefined) return undefined;
  const text = v.trim().startsWith('{') ? v : readFileSync(v, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new BadRequestError(`--template-variables is not valid JSON: ${(e as Error).message}.`);
  }
  const r = TemplateVariables.safeParse(parsed);
  if (!r.success)
    throw new BadRequestError(
      `--template-variables: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}.`,
    );
  return r.data;
}

/** `liftoff queue update` and `liftoff entity create|update`. */
export function queueAdminCommands(program: Command, env: Env): void {
  const queue = program.commands.find((c) => c.name() === 'queue');
  if (queue) {
    addQueueSwitches(
      common(queue.command('update <name>').description("change a queue's priority, aging and limit switches")),
    ).action(async (name: string, flags: Common & QueueSwitches) => {
      const q = await connect(flags, env).updateQueue(flags.entity, name, queueSwitches(flags));
      if (flags.json) return printJson(q);
      console.log(
        `queue ${q.entity}/${q.name}: prioritization ${q.prioritization_mode}, aging ${q.aging_seconds ?? 'none'}, max concurrency ${q.max_concurrency ?? 'none'}`,
      );
    });
  }
  const entity = program.command('entity').description('entities and their concurrency limit');
  for (const [verb, what] of [
    ['create', 'create an entity (needs a server admin key)'],
    ['update', "change an entity's concurrency limit"],
  ] as const) {
    entity
      .command(`${verb} <name>`)
      .description(what)
      .option(
        '--max-concurrency <n|none>',
        "most items of all the entity's queues claimed, starting or running at once",
      )
      .option('--json', 'print JSON')
      .option('-u, --url <url>', 'server URL')
      .action(async (name: string, flags: { maxConcurrency?: string; json?: boolean; url?: string }) => {
        const client = connect(flags, env);
        const max = limitFlag('--max-concurrency', flags.maxConcurrency);
        const e =
          verb === 'create'
            ? await client.createEntity({ name, max_concurrency: max ?? null })
            : await client.updateEntity(name, max === undefined ? {} : { max_concurrency: max });
        if (flags.json) return printJson(e);
        console.log(`entity ${e.name}: max concurrency ${e.max_concurrency ?? 'none'}`);
      });
  }
}
