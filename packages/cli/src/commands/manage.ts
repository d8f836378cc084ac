import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  BadRequestError,
  RESOURCE_TYPES,
  hasBuiltRunner,
  priorityName,
  queueResourceArgs,
  type Env,
  type ResourceType,
} from '@liftoff/core/base';
import { connect } from '../connection.js';
import {
  addQueueSwitches,
  describeRunSwitches,
  queueSwitches,
  readTemplateVariables,
  type QueueSwitches,
} from './queueOptions.js';
import { printJson, table, when } from '../output.js';
import { common, type Common } from './common.js';

export function queueCommands(program: Command, env: Env): void {
  const queue = program.command('queue').description('create, list, show and delete queues');

  addQueueSwitches(common(queue.command('create <name>').description('create a queue')))
    .option('-r, --resource <type>', `resource type: ${RESOURCE_TYPES.join(', ')}`, 'local-process')
    .option(
      '--config <json-or-file>',
      "default resource args for the queue's resource: inline JSON or a YAML/JSON file; may hold {{variable}}s",
    )
    .option('--template-variables <json-or-file>', '{"name": {"schema": {"type": "integer", "minimum": 1}}, ...}')
    .action(
      async (
        name: string,
        flags: Common & QueueSwitches & { resource: string; config?: string; templateVariables?: string },
      ) => {
        const client = await connect(flags, env);
        if (!(RESOURCE_TYPES as readonly string[]).includes(flags.resource)) {
          throw new BadRequestError(`--resource must be one of ${RESOURCE_TYPES.join(', ')}, got "${flags.resource}".`);
        }
        const args = flags.config ? await readObject(flags.config) : undefined;
        const q = await client.createQueue(flags.entity, {
          name,
          resource: flags.resource as ResourceType,
          // The same text the UI's form takes gives the same stored config (queueConfigText.ts).
          resource_args: queueResourceArgs(flags.resource, args),
          template_variables: await readTemplateVariables(flags.templateVariables),
          ...(await queueSwitches(flags)),
        });
        if (!hasBuiltRunner(q.resource))
          console.error(
            `warning: no agent of this Liftoff release runs ${q.resource} jobs yet; items pushed to "${q.name}" stay pending until one does.`,
          );
        if (flags.json) return printJson(q);
        console.log(`created queue ${q.entity}/${q.name} (${q.resource})`);
      },
    );

  common(queue.command('list').description('list queues')).action(async (flags: Common) => {
    const { queues } = await (await connect(flags, env)).listQueues(flags.entity);
    if (flags.json) return printJson(queues);
    console.log(
      table(
        ['NAME', 'RESOURCE', 'PENDING', 'ACTIVE', 'CREATED'],
        queues.map((q) => [q.name, q.resource, q.pending, q.running, when(q.created_at)]),
      ),
    );
  });

  common(
    queue.command('show <name>').description('show a queue, its config and its pending items with their positions'),
  ).action(async (name: string, flags: Common) => {
    const client = await connect(flags, env);
    const q = await client.getQueue(flags.entity, name);
    // The head of the line: the 1,000 pending items that run next, in queue order.
    const { items } = await client.listItems(flags.entity, name, { state: 'pending', order: 'queue', limit: 1000 });
    if (flags.json) return printJson({ ...q, pending_items: items });
    console.log(
      `queue ${q.entity}/${q.name}\n  resource: ${q.resource}\n  pending: ${q.pending}  active: ${q.running}`,
    );
    console.log(`  resource_args: ${JSON.stringify(q.resource_args)}`);
    console.log(
      `  prioritization: ${q.prioritization_mode}  aging: ${q.aging_seconds === null ? 'none' : `${q.aging_seconds}s`}  max concurrency: ${q.max_concurrency ?? 'none'}`,
    );
    console.log(`  ${describeRunSwitches(q)}`);
    if (Object.keys(q.template_variables).length)
      console.log(`  template variables: ${JSON.stringify(q.template_variables)}`);
    if (items.length) {
      const sorted = [...items].sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
      // Why-pending already says when a requeued item is eligible; the count shows which items were preempted.
      console.log(
        table(
          ['POSITION', 'ITEM', 'PRIORITY', 'CREATED', 'PREEMPTED', 'WHY PENDING'],
          sorted.map((i) => [
            i.position,
            i.id,
            priorityName(i.priority),
            when(i.created_at),
            i.preemptions || '-',
            i.pending_reason?.message ?? '',
          ]),
        ),
      );
    }
  });

  common(queue.command('delete <name>').description('delete a queue (its pending items end as stopped)')).action(
    async (name: string, flags: Common) => {
      await (await connect(flags, env)).deleteQueue(flags.entity, name);
      if (!flags.json) console.log(`deleted queue ${flags.entity}/${name}`);
    },
  );
}

export function agentsCommands(program: Command, env: Env): void {
  const agents = program.command('agents').description('launch agents');
  common(agents.command('list').description('list agents with their status')).action(async (flags: Common) => {
    const list = await (await connect(flags, env)).listAllAgents(flags.entity);
    if (flags.json) return printJson(list);
    console.log(
      table(
        ['AGENT ID', 'STATUS', 'START DATE', 'HOST', 'QUEUES', 'JOBS', 'LAST HEARTBEAT'],
        list.map((a) => [
          a.id,
          a.status + (a.status_reason ? ` (${a.status_reason})` : ''),
          when(a.started_at),
          a.hostname,
          a.queues.join(','),
          `${a.current_jobs}/${a.max_jobs === -1 ? '∞' : a.max_jobs}`,
          when(a.last_heartbeat_at),
        ]),
      ),
    );
  });
}

async function readObject(arg: string): Promise<Record<string, unknown>> {
  const { parse: parseYaml } = await import('yaml');
  let text = arg;
  if (!arg.trimStart().startsWith('{')) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch (e) {
      throw new BadRequestError(
        `--config ${arg}: not inline JSON and not a readable file (${(e as NodeJS.ErrnoException).code ?? ''}).`,
      );
    }
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (e) {
    throw new BadRequestError(`--config: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new BadRequestError('--config must be a mapping (JSON object).');
  return parsed as Record<string, unknown>;
}
