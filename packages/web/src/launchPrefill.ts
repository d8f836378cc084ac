import type { PriorityName, PushedBody } from './api.js';
import { joinArgv } from './util.js';

/** The launch form's free-text fields, as the dialog holds them. */
export interface FormText {
  entry: string;
  args: string;
  config: string;
  env: string;
  name: string;
}

/** The launch form filled from a run's push (a re-run), and the spec fields the form has no input for. */
export interface Prefill {
  sourceType: 'git' | 'code' | 'image';
  url: string;
  ref: string;
  image: string;
  /** Uploaded code: the run's archive, sent again unless another directory is chosen. */
  archiveId?: string;
  text: FormText;
  priority?: PriorityName;
  vars: Record<string, string>;
  /** Sent as they were: secret env names, the item's own resource args, the Dockerfile, the project. */
  carried: Record<string, unknown>;
  /** The values the text fields were filled from, sent unchanged while their text is. */
  original: { entry_point: string[]; args: string[]; run_config: Record<string, unknown>; env: Record<string, string> };
}

export function prefillFrom(pushed: PushedBody): Prefill {
  const { spec } = pushed;
  const src = spec.source;
  const carried: Record<string, unknown> = {};
  if (spec.secret_env && Object.keys(spec.secret_env).length) carried.secret_env = spec.secret_env;
  if (spec.resource_args && Object.keys(spec.resource_args).length) carried.resource_args = spec.resource_args;
  if (spec.dockerfile) carried.dockerfile = spec.dockerfile;
  if (spec.project) carried.project = spec.project;
  // A run of a job version is re-run as one: the server takes the version's source and checks its schema again.
  if (spec.job) carried.job = spec.job;
  if (spec.wandb_env) carried.wandb_env = spec.wandb_env;
  const runConfig = spec.run_config ?? {};
  const env = spec.env ?? {};
  return {
    sourceType: src.type,
    url: src.type === 'git' ? src.url : '',
    ref: src.type === 'git' ? (src.ref ?? '') : '',
    image: src.type === 'image' ? src.image : '',
    ...(src.type === 'code' ? { archiveId: src.archive_id } : {}),
    text: {
      entry: joinArgv(spec.entry_point ?? []),
      args: joinArgv(spec.args ?? []),
      config: Object.keys(runConfig).length ? JSON.stringify(runConfig, null, 2) : '',
      env: Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n'),
      name: spec.name ?? '',
    },
    ...(pushed.priority ? { priority: pushed.priority } : {}),
    vars: Object.fromEntries(Object.entries(pushed.template_variables ?? {}).map(([k, v]) => [k, String(v)])),
    carried,
    original: { entry_point: spec.entry_point ?? [], args: spec.args ?? [], run_config: runConfig, env },
  };
}

/**
 * A spec field from a text field the user may have edited: the run's own value while the text is as it was
 * prefilled (so a re-run sends exactly what was sent, even what the text form cannot hold, such as a multi-line
 * environment value), else the parsed text.
 */
export function keptOrParsed<T>(
  text: string,
  prefilled: string | undefined,
  original: T | undefined,
  parse: (t: string) => T,
): T {
  return prefilled !== undefined && original !== undefined && text === prefilled ? original : parse(text);
}
