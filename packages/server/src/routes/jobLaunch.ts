import type { LaunchSpec } from '@liftoff/core';
import { assertRunConfig } from '@liftoff/core/jobSchema';
import type { AppContext } from '../context.js';
import type { EntityRef } from '../store/entities.js';
import { Jobs } from '../store/jobs.js';

/**
 * A pushed spec that names a job version (`spec.job`) gets what the version pins, whatever the push said: its
 * source, Dockerfile and base image (into the queue resource's `builder.base_image`, unless the push sets one, so a
 * queue lock on it still applies); the entry point is the push's (the CLI sends the job's unless -E overrides it).
 * The run config is checked against the version's schema here, since the API is hostile input and a client may
 * skip its own check; a violation is refused before anything is queued.
 */
export async function applyJobVersion(
  ctx: AppContext,
  entity: EntityRef,
  resource: string,
  spec: LaunchSpec,
): Promise<LaunchSpec> {
  if (!spec.job) return spec;
  const version = await new Jobs(ctx.store.db).resolve(entity, spec.job.name, spec.job.version);
  assertRunConfig(`${spec.job.name}:${spec.job.version}`, version.schema, spec.run_config);
  const { dockerfile: _pushed, ...rest } = spec;
  const out: LaunchSpec = {
    ...rest,
    source: version.source,
    entry_point: spec.entry_point.length ? spec.entry_point : version.entry_point,
    ...(version.dockerfile ? { dockerfile: version.dockerfile } : {}),
    // The job opts its launches in to W&B's environment; a push may opt in on its own too.
    ...(version.wandb_env ? { wandb_env: true } : {}),
  };
  const section = out.resource_args[resource] ?? {};
  const builder = (section.builder ?? {}) as Record<string, unknown>;
  if (version.base_image && builder.base_image === undefined)
    out.resource_args = {
      ...out.resource_args,
      [resource]: { ...section, builder: { ...builder, base_image: version.base_image } },
    };
  return out;
}
