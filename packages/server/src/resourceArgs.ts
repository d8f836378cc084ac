import { LockedByQueueError, assertBuilderArgs, parseLocalContainerArgs, type LaunchSpec } from '@liftoff/core';
import { placeholderPaths } from './templates.js';

type ResourceArgs = LaunchSpec['resource_args'];

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The item's resource_args over the queue's defaults: objects merge key by key at every depth (so an item adding
 * `spec.template.spec.nodeSelector` keeps the queue's `spec.template.spec.tolerations`); arrays and scalars replace.
 */
export function mergeResourceArgs(base: ResourceArgs, over: ResourceArgs): ResourceArgs {
  return deepMerge(base, over) as ResourceArgs;
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

/** Whether `args` sets `path` or replaces a part of it (a scalar or array where the path goes on). */
function touches(args: unknown, path: string[]): boolean {
  let cur = args;
  for (const [i, key] of path.entries()) {
    if (!isPlainObject(cur) || !(key in cur)) return false;
    cur = cur[key];
    if (i < path.length - 1 && !isPlainObject(cur)) return true;
  }
  return true;
}

export interface QueueArgsPolicy {
  name: string;
  resource: string;
  /** The queue's default resource_args as stored, `{{variable}}`s unfilled. */
  resourceArgs: ResourceArgs;
  lockedKeys: readonly string[];
}

/**
 * Queue owners decide: an item may carry args only for its queue's resource type, and may not set a key the queue
 * locks, nor one the queue fills from a template variable (the variable, checked against its schema, is the only
 * way in). Each refusal names the key and what to do instead.
 */
export function assertItemResourceArgs(queue: QueueArgsPolicy, itemArgs: ResourceArgs): void {
  const foreign = Object.keys(itemArgs).filter((k) => k !== queue.resource);
  if (foreign.length) {
    throw new LockedByQueueError(
      `Queue "${queue.name}" runs ${queue.resource} jobs; the item's resource_args may only hold a "${queue.resource}" section, found ${foreign.map((k) => `"${k}"`).join(', ')}. Remove ${foreign.length > 1 ? 'them' : 'it'}.`,
    );
  }
  const mine = itemArgs[queue.resource];
  if (mine === undefined) return;
  const where = (path: string[]) => ['resource_args', queue.resource, ...path].join('.');
  if (queue.lockedKeys.includes('*') && Object.keys(mine).length) {
    throw new LockedByQueueError(
      `Queue "${queue.name}" locks all its resource args; its owner sets them. Remove --resource-args${templateHint(queue)}.`,
    );
  }
  for (const key of queue.lockedKeys) {
    const path = key.split('.');
    if (key !== '*' && touches(mine, path)) {
      throw new LockedByQueueError(
        `Queue "${queue.name}" locks ${where(path)}: its owner sets it. Remove "${key}" from the item's resource args.`,
      );
    }
  }
  for (const { path, names } of placeholderPaths(queue.resourceArgs[queue.resource] ?? {})) {
    if (touches(mine, path)) {
      throw new LockedByQueueError(
        `Queue "${queue.name}" sets ${where(path)} from its template variable${names.length > 1 ? 's' : ''} ${names.map((n) => `{{${n}}}`).join(', ')}; pass ${names.map((n) => `--set-var ${n}=VALUE`).join(' ')} instead of setting it in the item's resource args.`,
      );
    }
  }
}

function templateHint(queue: QueueArgsPolicy): string {
  const names = [...new Set(placeholderPaths(queue.resourceArgs).flatMap((p) => p.names))];
  return names.length
    ? ` and set its template variables with ${names.map((n) => `--set-var ${n}=VALUE`).join(' ')}`
    : '';
}

/** Refuses resource args the target's runner would refuse, at push time rather than when an agent takes the item. */
export function checkResourceArgs(resource: string, args: ResourceArgs): void {
  if (resource === 'local-container') parseLocalContainerArgs(args['local-container']);
  // base_image of any resource's builder section: an image reference, never Dockerfile text.
  assertBuilderArgs(args);
}
