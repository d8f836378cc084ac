import type { z } from 'zod';
import {
  BadRequestError,
  PushBody,
  describeIssues,
  sweepTrialCommand,
  type SweepConfig,
  type SweepTrialTemplate,
} from '@liftoff/core';

/** Longest sweep name kept in a trial's run name (`<sweep>-<number>`, within a spec name's 128 characters). */
const NAME_PREFIX_MAX = 100;

/**
 * The push of trial `number`: the sweep's trial template with the config's command (macros filled in) as its entry
 * point when there is one, the parameters over its run config, LIFTOFF_SWEEP_ID in its environment and
 * `<sweep>-<number>` as its name. Refused as a bad request when the result is no valid push (an empty command
 * argument, a run config of the wrong shape), so neither the create route nor the controller meets a bare zod error.
 */
export function trialPush(
  template: SweepTrialTemplate,
  config: SweepConfig,
  sweep: { id: string; name: string },
  number: number,
  params: Record<string, unknown>,
): z.output<typeof PushBody> {
  const spec = template.spec;
  const record = (v: unknown): Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const command = sweepTrialCommand(config, params);
  const candidate = {
    ...template,
    spec: {
      ...spec,
      ...(command ? { entry_point: command, args: [] } : {}),
      run_config: { ...record(spec.run_config), ...params },
      env: { ...record(spec.env), LIFTOFF_SWEEP_ID: sweep.id },
      name: `${sweep.name.slice(0, NAME_PREFIX_MAX)}-${number}`,
      ...(config.project && spec.project === undefined ? { project: config.project } : {}),
    },
  };
  const parsed = PushBody.safeParse(candidate);
  if (!parsed.success)
    throw new BadRequestError(
      `Trial ${number} of the sweep is not a valid push: ${describeIssues(parsed.error, candidate).join('; ')}.`,
    );
  return parsed.data;
}
