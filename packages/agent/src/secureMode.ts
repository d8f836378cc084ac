import { NotSupportedError, type LaunchSpec, type ResourceType } from '@liftoff/core';

/**
 * W&B's `secure_mode: true`: items may not replace what the job runs, nor reach the host. W&B locks the
 * `overrides.entry_point` of a job and, on Kubernetes, pod `command`, host namespaces and init containers. In Liftoff
 * the spec is the job (a code job's entry point is its definition, as a W&B job artifact's is), so:
 *
 * - an image job may not set `entry_point` (that replaces the image's own, as W&B's override would); `args` stay;
 * - local-process queues are not served: they run pushed code on the agent host outside any container, which is
 *   what secure_mode exists to prevent;
 * - on Kubernetes, the runner refuses any `command` and init containers in the resource args, and hostPID, hostIPC,
 *   hostNetwork and hostPort even where the queue allows them (runners/kubernetes/guardrails.ts).
 */
export function secureModeRefusal(spec: LaunchSpec, resource: ResourceType, queue: string): string | undefined {
  if (resource === 'local-process') return localProcessRefusal(queue);
  if (spec.source.type === 'image' && spec.entry_point.length > 0) {
    return `The agent runs in secure_mode, which does not let an item replace an image's entry point (entry_point ${JSON.stringify(spec.entry_point)}). Push the image job without an entry point (args are kept), or bake the command into the image.`;
  }
  return undefined;
}

function localProcessRefusal(queue: string): string {
  return `Queue "${queue}" runs local-process jobs, which an agent in secure_mode does not serve: they run pushed code on the agent host outside any container. Serve the queue from an agent without secure_mode, or use a local-container or kubernetes queue.`;
}

/** At agent start: a queue secure_mode cannot serve stops the agent before it takes anything. */
export function assertSecureModeServes(queue: string, resource: ResourceType): void {
  if (resource === 'local-process') throw new NotSupportedError(localProcessRefusal(queue));
}
