import type { SweepConfig } from './sweepConfig.js';

/** W&B's default trial command, used when a config has a `program` but no `command`. */
export const DEFAULT_SWEEP_COMMAND = ['${env}', '${interpreter}', '${program}', '${args}'] as const;

/**
 * What `${env}` and `${interpreter}` stand for. W&B uses `/usr/bin/env` and `python`; Liftoff's interpreter is
 * `python3`, the only name Debian and the python images have by default.
 */
export const SWEEP_MACRO_VALUES = { env: '/usr/bin/env', interpreter: 'python3' } as const;

/**
 * A parameter's value on a command line as W&B's agent writes it (Python's `str()`): numbers and strings as they
 * are, booleans `True`/`False`, null `None`, lists and mappings as JSON.
 */
export function sweepArgValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null || v === undefined) return 'None';
  return JSON.stringify(v);
}

/**
 * The trial's program and arguments, the config's `command` (or W&B's default around `program`) with its macros
 * filled in: `${args}` becomes one `--name=value` argument per top-level parameter, `${args_no_hyphens}` one
 * `name=value`, `${args_json}` one JSON argument. Undefined when the config has neither: the trial then runs the
 * entry point of its source and reads its parameters from the run config only. Never run by a shell: a macro that
 * is part of a longer argument is substituted in place, so nothing a parameter holds can become an operator.
 */
export function sweepTrialCommand(
  config: Pick<SweepConfig, 'program' | 'command'>,
  params: Record<string, unknown>,
): string[] | undefined {
  const template = config.command ?? (config.program ? [...DEFAULT_SWEEP_COMMAND] : undefined);
  if (!template) return undefined;
  const entries = Object.entries(params);
  const lists: Record<string, string[]> = {
    args: entries.map(([k, v]) => `--${k}=${sweepArgValue(v)}`),
    args_no_hyphens: entries.map(([k, v]) => `${k}=${sweepArgValue(v)}`),
  };
  const scalars: Record<string, string> = {
    ...SWEEP_MACRO_VALUES,
    program: config.program ?? '',
    args_json: JSON.stringify(params),
  };
  return template.flatMap((part) => {
    // A part that is exactly a list macro expands to its arguments (none when there are no parameters).
    const list = /^\$\{(args|args_no_hyphens)\}$/.exec(part);
    if (list?.[1]) return lists[list[1]] ?? [];
    return [
      part.replace(/\$\{([a-z_]+)\}/g, (whole, name: string) =>
        name in lists ? (lists[name] ?? []).join(' ') : (scalars[name] ?? whole),
      ),
    ];
  });
}
