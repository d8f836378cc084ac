import { BadRequestError, type JobVersion, type LaunchSpecInput, type LiftoffClient } from '@liftoff/core';
import { splitJobRef } from './jobs.js';

/** Flags that a job pins, so `-j` cannot be given with them. */
const JOB_PINS = [
  ['code', '--code'],
  ['git', '--git'],
  ['ref', '--ref'],
  ['image', '--image'],
  ['dockerfile', '--dockerfile'],
] as const;

export function assertNoSourceFlags(flags: Record<string, unknown>): void {
  for (const [key, flag] of JOB_PINS)
    if (flags[key] !== undefined)
      throw new BadRequestError(`${flag} and -j both give the source; a job version pins it (or create a new one).`);
}

/**
 * The spec of a launch of job `NAME[:vN|:alias]`: the version's source and entry point (an `-E` overrides the entry
 * point) and `job: {name, version}` with the version resolved now, so the item, its runs and a re-run keep the
 * version even after an alias moves. The run config is checked against the version's schema before anything is
 * pushed (the server checks it again).
 */
export async function jobLaunchSpec(
  client: LiftoffClient,
  entity: string,
  ref: string,
  rest: Omit<LaunchSpecInput, 'source' | 'job'> & { run_config: Record<string, unknown> },
  /** Whether `rest.run_config` is the one pushed; a sweep's items each get their own, checked one by one. */
  check = true,
): Promise<{ spec: LaunchSpecInput; version: JobVersion }> {
  const [name, wanted] = splitJobRef(ref);
  const version = await client.jobVersion(entity, name, wanted);
  if (check && version.schema) {
    // ajv loads only for a job with a schema, not for every launch.
    const { assertRunConfig } = await import('@liftoff/core/jobSchema');
    assertRunConfig(`${name}:${version.version}`, version.schema, rest.run_config);
  }
  return {
    version,
    spec: {
      ...rest,
      source: version.source,
      entry_point: rest.entry_point?.length ? rest.entry_point : version.entry_point,
      job: { name, version: version.version },
    },
  };
}
