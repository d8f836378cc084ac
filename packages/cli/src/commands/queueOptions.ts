import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { PrioritizationMode, Queue, SecurityAllowance, TemplateVariables, UpdateQueueBody } from '@liftoff/core';
import { BadRequestError, SECURITY_ALLOWANCES, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import { common, type Common } from './common.js';

/** The queue switches shared by `queue create` and `queue update`. */
export interface QueueSwitches {
  prioritization?: string;
  agingSeconds?: string;
  maxConcurrency?: string;
  startTimeout?: string;
  preemptionRetries?: string;
  preemptionBackoff?: string;
  allow?: string;
  lock?: string;
  lostRetries?: string;
  maxLogBytes?: string;
}

export function addQueueSwitches(cmd: Command): Command {
  return cmd
    .option('--prioritization <mode>', `DISABLED (only the default priority) or V0 (serve higher priorities first)`)
    .option('--aging-seconds <s|none>', 'with V0: a waiting item moves up one priority level per this many seconds')
    .option('--max-concurrency <n|none>', 'most items of this queue claimed, starting or running at once')
    .option(
      '--start-timeout <seconds|none>',
      'fail a run still starting this long after its runner submitted it (builds do not count)',
    )
    .option(
      '--preemption-retries <n>',
      'requeue an item this many times after its run was preempted (0-100, default 3)',
    )
    .option('--preemption-backoff <seconds>', 'wait before the first requeued retry, doubled per retry (default 30)')
    .option(
      '--allow <list|none>',
      `guardrail exceptions (Kubernetes manifests; root: containers may run as uid 0), comma-separated: ${SECURITY_ALLOWANCES.join(', ')}, namespace:<name>, serviceAccount:<name>`,
    )
    .option(
      '--lost-retries <n>',
      'requeue an item this many times after its run was declared lost (its agent went silent; 0-10, default 0)',
    )
    .option('--max-log-bytes <n|none>', "lower the server's per-run log cap for this queue's runs (none: the server's)")
    .option(
      '--lock <keys|none>',
      'resource-arg keys items may not set, comma-separated dotted paths (e.g. user,memory,builder.base_image), or * for all',
    );
}

/** "none" (or nothing) locks no key; the server checks each path's form. */
function lockFlag(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === 'none' || v.trim() === '') return [];
  return [...new Set(v.split(',').map((x) => x.trim()))].filter(Boolean);
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

/** An integer within [min, max]; the server checks again, but a typo should fail before anything is sent. */
function intFlag(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new BadRequestError(`${flag} must be an integer from ${min} to ${max}, got "${v}".`);
  return n;
}

/** "none" (or nothing) allows no exception; names are checked here so a typo names the valid ones. */
function allowFlag(
  v: string | undefined,
  isSecurityAllowance: (s: string) => s is SecurityAllowance,
): SecurityAllowance[] | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === 'none' || v.trim() === '') return [];
  const names = [...new Set(v.split(',').map((x) => x.trim()))].filter(Boolean);
  const unknown = names.filter((n) => !isSecurityAllowance(n));
  if (unknown.length)
    throw new BadRequestError(
      `--allow: unknown ${unknown.map((n) => `"${n}"`).join(', ')}; use a comma-separated list of ${SECURITY_ALLOWANCES.join(', ')}, namespace:<name>, serviceAccount:<name>, or "none".`,
    );
  return names as SecurityAllowance[];
}

/** "start timeout 600s, preemption retries 3, backoff 30s, allow hostNetwork,privileged": the agent-side switches. */
export function describeRunSwitches(q: Queue): string {
  return `start timeout: ${q.start_timeout_seconds === null ? 'none' : `${q.start_timeout_seconds}s`}  preemption retries: ${q.preemption_retries}  backoff: ${q.preemption_backoff_seconds}s  allow: ${q.allow.join(',') || 'none'}  locked: ${q.locked_keys.join(',') || 'none'}  lost retries: ${q.lost_retries}  log cap: ${q.max_log_bytes === null ? 'server' : `${q.max_log_bytes} bytes`}`;
}

/** Async because the API's schemas load only when a command runs (see connect()). */
export async function queueSwitches(f: QueueSwitches): Promise<UpdateQueueBody> {
  const { PRIORITIZATION_MODES, isSecurityAllowance } = await import('@liftoff/core');
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
  const startTimeout = limitFlag('--start-timeout', f.startTimeout);
  if (startTimeout !== undefined) out.start_timeout_seconds = startTimeout;
  const retries = intFlag('--preemption-retries', f.preemptionRetries, 0, 100);
  if (retries !== undefined) out.preemption_retries = retries;
  const backoff = intFlag('--preemption-backoff', f.preemptionBackoff, 0, 86_400);
  if (backoff !== undefined) out.preemption_backoff_seconds = backoff;
  const allow = allowFlag(f.allow, isSecurityAllowance);
  if (allow !== undefined) out.allow = allow;
  const locked = lockFlag(f.lock);
  if (locked !== undefined) out.locked_keys = locked;
  const lostRetries = intFlag('--lost-retries', f.lostRetries, 0, 10);
  if (lostRetries !== undefined) out.lost_retries = lostRetries;
  const maxLog = limitFlag('--max-log-bytes', f.maxLogBytes);
  if (maxLog !== undefined) out.max_log_bytes = maxLog;
  return out;
}

/** `--template-variables`: inline JSON or a JSON file, `{name: {schema: {type, enum, minimum, maximum, default}}}`. */
export async function readTemplateVariables(v: string | undefined): Promise<TemplateVariables | undefined> {
  if (v === undefined) return undefined;
  const { TemplateVariables } = await import('@liftoff/core');
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
      common(queue.command('update <name>').description("change a queue's priority, limit and run switches")),
    ).action(async (name: string, flags: Common & QueueSwitches) => {
      const q = await (await connect(flags, env)).updateQueue(flags.entity, name, await queueSwitches(flags));
      if (flags.json) return printJson(q);
      console.log(
        `queue ${q.entity}/${q.name}: prioritization ${q.prioritization_mode}, aging ${q.aging_seconds ?? 'none'}, max concurrency ${q.max_concurrency ?? 'none'}`,
      );
      console.log(`  ${describeRunSwitches(q)}`);
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
        const client = await connect(flags, env);
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
