import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import {
  BadRequestError,
  LiftoffError,
  RESOURCE_TYPES,
  priorityName,
  type Env,
  type LiftoffClient,
  type ResourceType,
  type RunDetail,
} from '@liftoff/core';
import { connect } from '../connection.js';
import { addQueueSwitches, queueSwitches, readTemplateVariables, type QueueSwitches } from './queueOptions.js';
import { duration, printJson, table, when } from '../output.js';
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
        const client = connect(flags, env);
        if (!(RESOURCE_TYPES as readonly string[]).includes(flags.resource)) {
          throw new BadRequestError(`--resource must be one of ${RESOURCE_TYPES.join(', ')}, got "${flags.resource}".`);
        }
        const args = flags.config ? readObject(flags.config) : undefined;
        const q = await client.createQueue(flags.entity, {
          name,
          resource: flags.resource as ResourceType,
          resource_args: args ? { [flags.resource]: args } : {},
          template_variables: readTemplateVariables(flags.templateVariables),
          ...queueSwitches(flags),
        });
        if (flags.json) return printJson(q);
        console.log(`created queue ${q.entity}/${q.name} (${q.resource})`);
      },
    );

  common(queue.command('list').description('list queues')).action(async (flags: Common) => {
    const { queues } = await connect(flags, env).listQueues(flags.entity);
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
    const client = connect(flags, env);
    const q = await client.getQueue(flags.entity, name);
    const { items } = await client.listItems(flags.entity, name, { state: 'pending', limit: 1000 });
    if (flags.json) return printJson({ ...q, pending_items: items });
    console.log(
      `queue ${q.entity}/${q.name}\n  resource: ${q.resource}\n  pending: ${q.pending}  active: ${q.running}`,
    );
    console.log(`  resource_args: ${JSON.stringify(q.resource_args)}`);
    console.log(
      `  prioritization: ${q.prioritization_mode}  aging: ${q.aging_seconds === null ? 'none' : `${q.aging_seconds}s`}  max concurrency: ${q.max_concurrency ?? 'none'}`,
    );
    if (Object.keys(q.template_variables).length)
      console.log(`  template variables: ${JSON.stringify(q.template_variables)}`);
    if (items.length) {
      const sorted = [...items].sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
      console.log(
        table(
          ['POSITION', 'ITEM', 'PRIORITY', 'CREATED', 'WHY PENDING'],
          sorted.map((i) => [
            i.position,
            i.id,
            priorityName(i.priority),
            when(i.created_at),
            i.pending_reason?.message ?? '',
          ]),
        ),
      );
    }
  });

  common(queue.command('delete <name>').description('delete a queue (its pending items end as stopped)')).action(
    async (name: string, flags: Common) => {
      await connect(flags, env).deleteQueue(flags.entity, name);
      if (!flags.json) console.log(`deleted queue ${flags.entity}/${name}`);
    },
  );
}

export function agentsCommands(program: Command, env: Env): void {
  const agents = program.command('agents').description('launch agents');
  common(agents.command('list').description('list agents with their status')).action(async (flags: Common) => {
    const { agents: list } = await connect(flags, env).listAgents(flags.entity);
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

export function runsCommands(program: Command, env: Env): void {
  const runs = program.command('runs').description('inspect, follow and cancel runs');

  common(runs.command('list').description('list runs, newest first'))
    .option('-q, --queue <name>', 'only this queue')
    .option('--limit <n>', 'how many', '50')
    .action(async (flags: Common & { queue?: string; limit: string }) => {
      const { runs: list } = await connect(flags, env).listRuns(flags.entity, {
        queue: flags.queue,
        limit: Number(flags.limit),
      });
      if (flags.json) return printJson(list);
      console.log(
        table(
          ['RUN', 'QUEUE', 'STATUS', 'EXIT', 'STAGE', 'DURATION', 'CREATED'],
          list.map((r) => [
            r.id,
            r.queue,
            r.status,
            r.exit_code,
            r.error_stage,
            duration(r.started_at, r.ended_at),
            when(r.created_at),
          ]),
        ),
      );
    });

  common(runs.command('show <id>').description('show a run (a run id, or the id of the item it started from)')).action(
    async (id: string, flags: Common) => {
      const client = connect(flags, env);
      const shown = await resolveRunOrItem(client, id);
      if (flags.json) return printJson(shown);
      if (shown.kind === 'item') {
        const i = shown.item;
        console.log(
          `item ${i.id} on ${i.entity}/${i.queue}: ${i.state}${i.position ? ` (position ${i.position} in the queue)` : ''}`,
        );
        console.log(`  priority ${priorityName(i.priority)}, created ${when(i.created_at)}`);
        if (i.pending_reason) console.log(`  why pending: ${i.pending_reason.message}`);
        return;
      }
      printRun(shown.run);
    },
  );

  common(runs.command('logs <id>').description("print a run's logs"))
    .option('-f, --follow', 'keep following until the run ends')
    .action(async (id: string, flags: Common & { follow?: boolean }) => {
      const client = connect(flags, env);
      const runId = await runIdOf(client, id);
      if (flags.follow) {
        await client.followLogs(runId, (t) => process.stdout.write(t));
        return;
      }
      let offset = 0;
      for (;;) {
        const page = await client.readLogs(runId, offset);
        process.stdout.write(page.data);
        if (page.next_offset === offset) break;
        offset = page.next_offset;
      }
    });

  common(runs.command('cancel <id>').description('cancel a run or a pending item')).action(
    async (id: string, flags: Common) => {
      const client = connect(flags, env);
      const shown = await resolveRunOrItem(client, id);
      if (shown.kind === 'item') {
        const item = await client.cancelItem(shown.item.id);
        console.log(`item ${item.id}: ${item.state}`);
      } else {
        const run = await client.cancelRun(shown.run.id);
        console.log(`run ${run.id}: ${run.status}`);
      }
    },
  );
}

function printRun(r: RunDetail): void {
  console.log(`run ${r.id} on ${r.entity}/${r.queue}: ${r.status}`);
  console.log(`  item: ${r.item_id}  agent: ${r.agent_id}`);
  console.log(
    `  created ${when(r.created_at)}  started ${when(r.started_at)}  ended ${when(r.ended_at)}  (${duration(r.started_at, r.ended_at)})`,
  );
  if (r.exit_code !== null) console.log(`  exit code: ${r.exit_code}`);
  if (r.error_stage) console.log(`  error (${r.error_stage}): ${r.error_message ?? ''}`);
  const s = r.spec.source;
  const src =
    s.type === 'git'
      ? `git ${s.url}${s.ref ? `@${s.ref}` : ''}`
      : s.type === 'image'
        ? `image ${s.image}`
        : `code archive ${s.archive_id}`;
  console.log(`  source: ${src}`);
  console.log(`  command: ${[...r.spec.entry_point, ...r.spec.args].join(' ')}`);
}

type Resolved = { kind: 'run'; run: RunDetail } | { kind: 'item'; item: Awaited<ReturnType<LiftoffClient['getItem']>> };

async function resolveRunOrItem(client: LiftoffClient, id: string): Promise<Resolved> {
  try {
    return { kind: 'run', run: await client.getRun(id) };
  } catch (e) {
    if (!(e instanceof LiftoffError) || e.code !== 'NOT_FOUND') throw e;
  }
  let item;
  try {
    item = await client.getItem(id);
  } catch (e) {
    if (e instanceof LiftoffError && e.code === 'NOT_FOUND') {
      throw new LiftoffError('NOT_FOUND', `No run or item "${id}". List runs with "liftoff runs list".`);
    }
    throw e;
  }
  if (item.run_id) return { kind: 'run', run: await client.getRun(item.run_id) };
  return { kind: 'item', item };
}

async function runIdOf(client: LiftoffClient, id: string): Promise<string> {
  const r = await resolveRunOrItem(client, id);
  if (r.kind === 'item')
    throw new LiftoffError('CONFLICT', `Item ${id} has not started yet (${r.item.state}); there are no logs.`);
  return r.run.id;
}

function readObject(arg: string): Record<string, unknown> {
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
