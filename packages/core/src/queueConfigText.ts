import { RESOURCE_TYPES } from './states.js';

/**
 * How a queue's default resource config, as a user writes it (`liftoff queue create --config`, the UI's "New queue"
 * form), becomes the stored `resource_args`. Both clients call this one function, so the same text gives the same
 * stored config (issue 18: the CLI wrapped the text in its resource's section while the form sent it as it was).
 *
 * The text is the resource's own section, as W&B's queue config is (`cpus: 2` for local-container). A text that is
 * already keyed by the resource type (`local-container: {cpus: 2}`, the stored shape) is taken as it is rather than
 * nested a second time; so is one keyed by another resource type, which the server then refuses by name rather than
 * storing it as an option of this one. Browser-safe: imports only the states module.
 */

export function queueResourceArgs(
  resource: string,
  parsed: Record<string, unknown> | undefined,
): Record<string, Record<string, unknown>> {
  if (!parsed || Object.keys(parsed).length === 0) return {};
  const keys = Object.keys(parsed);
  const only = keys.length === 1 ? keys[0] : undefined;
  const section = only === undefined ? undefined : parsed[only];
  if (
    only !== undefined &&
    (RESOURCE_TYPES as readonly string[]).includes(only) &&
    typeof section === 'object' &&
    section !== null &&
    !Array.isArray(section)
  )
    return { [only]: section as Record<string, unknown> };
  return { [resource]: parsed };
}
