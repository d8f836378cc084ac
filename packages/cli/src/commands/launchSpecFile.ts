import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { BadRequestError, WandbSpecInvalidError, type LaunchSpecInput, type LiftoffClient } from '@liftoff/core';
import { mapWandbSpec, type MappedSpec } from '../wandbSpec.js';

/** Flags that `--spec` replaces: the spec says these, so giving both would leave one of them unsaid. */
const SPEC_EXCLUSIVE = [
  ['job', '--job'],
  ['code', '--code'],
  ['git', '--git'],
  ['ref', '--ref'],
  ['image', '--image'],
  ['dockerfile', '--dockerfile'],
  ['entryPoint', '--entry-point'],
  ['config', '--config'],
  ['resource', '--resource'],
  ['resourceArgs', '--resource-args'],
  ['name', '--name'],
  ['project', '--project'],
  ['priority', '--priority'],
] as const;

/** Reads and maps `--spec FILE` (JSON or YAML; YAML is a superset of JSON, so one parser reads both). */
export function readWandbSpec(file: string, flags: Record<string, unknown>, args: string[]): MappedSpec {
  for (const [key, flag] of SPEC_EXCLUSIVE)
    if (flags[key] !== undefined)
      throw new BadRequestError(`${flag} and --spec both say this; give it in the spec (see docs/jobs.md).`);
  if (args.length) throw new BadRequestError('--spec takes the job arguments from overrides.args, not after --.');
  if ((flags.sweep as string[] | undefined)?.length) throw new BadRequestError('--sweep cannot be used with --spec.');
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new WandbSpecInvalidError(`${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  return mapWandbSpec(parsed, (p) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  });
}

/**
 * The spec to push from a mapped W&B spec; its source is uploaded (a directory) or taken as is. A `job` source is
 * resolved by the caller (jobs), so it never reaches here.
 */
export async function specFromMapped(
  client: LiftoffClient,
  mapped: MappedSpec,
  entity: string,
  upload: (client: LiftoffClient, dir: string, entity: string) => Promise<string>,
): Promise<Omit<LaunchSpecInput, 'source'> & { source?: LaunchSpecInput['source'] }> {
  const src = mapped.source;
  const source =
    src.type === 'code'
      ? { type: 'code' as const, archive_id: await upload(client, src.dir, entity) }
      : src.type === 'git'
        ? { type: 'git' as const, url: src.url, ...(src.ref ? { ref: src.ref } : {}) }
        : src.type === 'image'
          ? { type: 'image' as const, image: src.image }
          : undefined;
  return {
    ...(source ? { source } : {}),
    ...(mapped.entry_point ? { entry_point: mapped.entry_point } : {}),
    args: mapped.args,
    run_config: mapped.run_config,
    ...(mapped.resource ? { resource: mapped.resource } : {}),
    resource_args: mapped.resource_args,
    ...(mapped.dockerfile ? { dockerfile: mapped.dockerfile } : {}),
    ...(mapped.name ? { name: mapped.name } : {}),
    ...(mapped.project ? { project: mapped.project } : {}),
    // Code written for W&B's agent reads its config from WANDB_CONFIG: a W&B spec gets W&B's environment.
    wandb_env: true,
  };
}

/** The entity to push to: `-e` when given (it must agree with the spec's), else the spec's, else `default`. */
export function specEntity(mapped: MappedSpec, flagEntity: string, flagGiven: boolean): string {
  if (mapped.entity && flagGiven && mapped.entity !== flagEntity)
    throw new BadRequestError(`-e ${flagEntity} and the spec's entity "${mapped.entity}" differ; give one.`);
  return flagGiven ? flagEntity : (mapped.entity ?? flagEntity);
}
