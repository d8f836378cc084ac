import { SourceRefusedError, type ClaimedItem } from '@liftoff/core';

type Spec = ClaimedItem['spec'];

export interface MacroValues {
  run_id: string;
  entity_name: string;
  image_uri?: string;
}

/** W&B Launch's run macros; nothing else expands unless the agent config's `macro-env` names it. */
export const RUN_MACROS = ['run_id', 'run_name', 'entity_name', 'project_name', 'image_uri', 'author'] as const;

/** A `${NAME}` the agent will not expand: the run fails at stage agent with this message. */
export class MacroRefusedError extends SourceRefusedError {}

const MACRO = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function fill(v: unknown, lookup: (name: string) => string | undefined): unknown {
  if (typeof v === 'string') return v.replace(MACRO, (m, name: string) => lookup(name) ?? m);
  if (Array.isArray(v)) return v.map((x) => fill(x, lookup));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, lookup)]));
  return v;
}

function namesIn(v: unknown, out: Set<string>): Set<string> {
  if (typeof v === 'string') for (const m of v.matchAll(MACRO)) out.add(m[1] as string);
  else if (Array.isArray(v)) for (const x of v) namesIn(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) namesIn(x, out);
  return out;
}

/**
 * Refuses a spec whose resource args (template values included: the server has filled them in) use a `${NAME}` that
 * is neither a run macro nor an agent variable the agent config's `macro-env` lists and the agent has. W&B expands
 * any variable of the agent's environment, which hands its secrets to whoever can push; this runs before anything
 * is fetched, built or created.
 */
export function assertMacrosAllowed(
  spec: Spec,
  macroEnv: readonly string[],
  env: Record<string, string | undefined>,
): void {
  for (const name of namesIn(spec.resource_args, new Set())) {
    if ((RUN_MACROS as readonly string[]).includes(name)) continue;
    if (!macroEnv.includes(name)) {
      throw new MacroRefusedError(
        `The resource args use \${${name}}, which is not a run macro (${RUN_MACROS.join(', ')}) and not an agent variable listed in the agent config's "macro-env". Remove it, or ask the agent's operator to add ${name} to macro-env.`,
      );
    }
    if (env[name] === undefined) {
      throw new MacroRefusedError(
        `The resource args use \${${name}}, which the agent config's "macro-env" allows but the agent's environment does not set. Set ${name} where the agent runs, or remove it from the resource args.`,
      );
    }
  }
}

/**
 * W&B Launch's agent-side macros in resource_args, filled just before the runner submits the job (only then are
 * the run id and image known): ${run_id}, ${run_name}, ${entity_name}, ${project_name}, ${image_uri}, ${author},
 * and the agent variables named in `macro-env`. Call assertMacrosAllowed first: anything else stays as written here.
 */
export function fillResourceMacros(
  spec: Spec,
  values: MacroValues,
  env: Record<string, string | undefined>,
  macroEnv: readonly string[] = [],
): Spec {
  const known: Record<string, string | undefined> = {
    run_id: values.run_id,
    run_name: spec.name ?? values.run_id,
    entity_name: values.entity_name,
    project_name: spec.project,
    image_uri: values.image_uri,
    author: spec.author,
  };
  const lookup = (name: string) =>
    Object.hasOwn(known, name) ? known[name] : macroEnv.includes(name) ? env[name] : undefined;
  return { ...spec, resource_args: fill(spec.resource_args, lookup) as Spec['resource_args'] };
}
