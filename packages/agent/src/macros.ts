import type { ClaimedItem } from '@liftoff/core';

type Spec = ClaimedItem['spec'];

export interface MacroValues {
  run_id: string;
  entity_name: string;
  image_uri?: string;
}

const MACRO = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function fill(v: unknown, lookup: (name: string) => string | undefined): unknown {
  if (typeof v === 'string') return v.replace(MACRO, (m, name: string) => lookup(name) ?? m);
  if (Array.isArray(v)) return v.map((x) => fill(x, lookup));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, lookup)]));
  return v;
}

/**
 * W&B Launch's agent-side macros in resource_args, filled just before the runner submits the job (only then are
 * the run id and image known): ${run_id}, ${run_name}, ${entity_name}, ${project_name}, ${image_uri}, ${author},
 * then any ${ENV_VAR} of the agent's environment. Unknown macros are left as written, as W&B does.
 */
export function fillResourceMacros(spec: Spec, values: MacroValues, env: Record<string, string | undefined>): Spec {
  const known: Record<string, string | undefined> = {
    run_id: values.run_id,
    run_name: spec.name ?? values.run_id,
    entity_name: values.entity_name,
    project_name: spec.project,
    image_uri: values.image_uri,
    author: spec.author,
  };
  const lookup = (name: string) => (name in known ? known[name] : env[name]);
  return { ...spec, resource_args: fill(spec.resource_args, lookup) as Spec['resource_args'] };
}
