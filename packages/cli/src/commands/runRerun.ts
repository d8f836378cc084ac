import type { Command } from 'commander';
import type { Item, LiftoffClient, PushBody } from '@liftoff/core';
import { BadRequestError, PRIORITIES, priorityName, type Env, type PriorityName } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import { applySets, collect, parsePairs } from '../runConfigFlags.js';
import { common, type Common } from './common.js';
import { resolveRunOrItem } from './runLookup.js';

export interface RerunFlags {
  set: string[];
  setVar: string[];
  priority?: string;
  name?: string;
}

/**
 * What a re-run pushes: the item's push as its author sent it (its spec before the queue's resource args and
 * templates were merged in, its priority and template values), with the changes asked for. An item pushed before
 * Liftoff kept that has only its merged spec: it is pushed again as is, and the queue's rules apply to it anew (a key
 * the queue now locks is refused, naming it).
 */
export function rerunBody(item: Item, flags: RerunFlags): PushBody {
  const base = item.pushed ?? {
    spec: item.spec,
    priority: priorityName(item.priority),
    template_variables: {},
  };
  // The author is whoever pushes; the server sets it.
  const { author: _author, ...spec } = base.spec;
  if (flags.priority !== undefined && !(flags.priority in PRIORITIES))
    throw new BadRequestError(`--priority "${flags.priority}": expected one of ${Object.keys(PRIORITIES).join(', ')}.`);
  const priority = (flags.priority as PriorityName | undefined) ?? base.priority;
  return {
    spec: {
      ...spec,
      run_config: applySets(spec.run_config ?? {}, flags.set),
      ...(flags.name !== undefined ? { name: flags.name } : {}),
    },
    ...(priority ? { priority } : {}),
    template_variables: { ...base.template_variables, ...parsePairs(flags.setVar, '--set-var') },
  };
}

async function itemOf(client: LiftoffClient, id: string): Promise<{ item: Item; from: string }> {
  const shown = await resolveRunOrItem(client, id);
  if (shown.kind === 'item') return { item: shown.item, from: `item ${shown.item.id}` };
  return { item: await client.getItem(shown.run.item_id), from: `run ${shown.run.id}` };
}

export function runRerunCommand(runs: Command, env: Env): void {
  common(
    runs
      .command('rerun <id>')
      .description(
        'push a run (or item) again onto its queue, as it was pushed: the same code, command and run config, with --set changes',
      ),
  )
    .option('--set <key=value>', 'change a run config key (repeatable; dotted keys nest; JSON values)', collect, [])
    .option('--set-var <name=value>', "change a {{variable}} of the queue's config template (repeatable)", collect, [])
    .option('-P, --priority <priority>', `one of ${Object.keys(PRIORITIES).join(', ')} (default: the run's)`)
    .option('-n, --name <name>', "run name (default: the run's)")
    .action(async (id: string, flags: Common & RerunFlags) => {
      const client = await connect(flags, env);
      const { item, from } = await itemOf(client, id);
      const pushed = await client.push(item.entity, item.queue, rerunBody(item, flags));
      if (flags.json) return printJson(pushed);
      process.stderr.write(`queued ${pushed.id} on ${item.entity}/${item.queue}: a re-run of ${from}\n`);
      process.stdout.write(`${pushed.id}\n`);
    });
}
