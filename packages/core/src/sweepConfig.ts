import { parseDocument } from 'yaml';
import { z } from 'zod';
import { describeIssues, formatPath } from './agentConfig.js';
import { ConfigInvalidError } from './errors.js';

/**
 * A sweep's config, key for key W&B's sweep configuration format (docs.wandb.ai "Define a sweep configuration"), so
 * an existing W&B sweep file loads unchanged. Glossary:
 * - parameter: one entry of `parameters`; a leaf has a fixed value, a list of values or a distribution, a nested one
 *   has `parameters` of its own (its trial value is a mapping);
 * - trial: one run of the sweep, pushed as a queue item whose run config holds one value per parameter;
 * - bracket (band): a hyperband checkpoint, counted in reported values of the metric.
 */

/** Every distribution of W&B's format, each sampled as W&B's sweep engine defines it. */
export const SWEEP_DISTRIBUTIONS = [
  'constant',
  'categorical',
  'int_uniform',
  'uniform',
  'q_uniform',
  'log_uniform',
  'log_uniform_values',
  'q_log_uniform',
  'q_log_uniform_values',
  'inv_log_uniform',
  'inv_log_uniform_values',
  'normal',
  'q_normal',
  'log_normal',
  'q_log_normal',
  'beta',
  'q_beta',
] as const;
export type SweepDistribution = (typeof SWEEP_DISTRIBUTIONS)[number];

/** The keys each distribution takes besides `distribution` (W&B's per-distribution schema). */
const DISTRIBUTION_KEYS: Record<SweepDistribution, readonly string[]> = {
  constant: ['value'],
  categorical: ['values', 'probabilities'],
  int_uniform: ['min', 'max'],
  uniform: ['min', 'max'],
  q_uniform: ['min', 'max', 'q'],
  log_uniform: ['min', 'max'],
  log_uniform_values: ['min', 'max'],
  q_log_uniform: ['min', 'max', 'q'],
  q_log_uniform_values: ['min', 'max', 'q'],
  inv_log_uniform: ['min', 'max'],
  inv_log_uniform_values: ['min', 'max'],
  normal: ['mu', 'sigma'],
  q_normal: ['mu', 'sigma', 'q'],
  log_normal: ['mu', 'sigma'],
  q_log_normal: ['mu', 'sigma', 'q'],
  beta: ['a', 'b'],
  q_beta: ['a', 'b', 'q'],
};
/** Distributions whose min and max are values that must be positive (the others' are exponents or plain bounds). */
const POSITIVE_BOUNDS = new Set<SweepDistribution>([
  'log_uniform_values',
  'q_log_uniform_values',
  'inv_log_uniform_values',
]);

const Finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

export interface SweepParameter {
  value?: unknown;
  values?: unknown[];
  probabilities?: number[];
  distribution?: SweepDistribution;
  min?: number;
  max?: number;
  mu?: number;
  sigma?: number;
  q?: number;
  /** The shape parameters of `beta` and `q_beta` (W&B's names). */
  a?: number;
  b?: number;
  parameters?: Record<string, SweepParameter>;
}

const ParameterName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.-]+$/, 'parameter names are letters, digits, "_", "." and "-"');

export const SweepParameter: z.ZodType<SweepParameter> = z.lazy(() =>
  z
    .object({
      value: z.unknown().optional(),
      values: z.array(z.unknown()).min(1).max(10_000).optional(),
      probabilities: z.array(z.number().min(0).max(1)).optional(),
      distribution: z.enum(SWEEP_DISTRIBUTIONS).optional(),
      min: Finite.optional(),
      max: Finite.optional(),
      mu: Finite.optional(),
      sigma: Finite.refine((s) => s > 0, { message: 'must be greater than 0' }).optional(),
      q: Finite.refine((q) => q > 0, { message: 'must be greater than 0' }).optional(),
      a: Finite.refine((a) => a > 0, { message: 'must be greater than 0' }).optional(),
      b: Finite.refine((b) => b > 0, { message: 'must be greater than 0' }).optional(),
      parameters: z.record(ParameterName, SweepParameter).optional(),
    })
    .strict()
    .superRefine(checkParameter),
);

function checkParameter(p: SweepParameter, ctx: z.RefinementCtx): void {
  const given = Object.keys(p).filter((k) => (p as Record<string, unknown>)[k] !== undefined);
  if (p.parameters !== undefined) {
    if (!Object.keys(p.parameters).length) {
      ctx.addIssue({ code: 'custom', path: ['parameters'], message: 'must name at least one nested parameter' });
    }
    for (const k of given.filter((k) => k !== 'parameters')) {
      ctx.addIssue({ code: 'custom', path: [k], message: 'a parameter with nested "parameters" takes no other key' });
    }
    return;
  }
  const distribution = p.distribution;
  if (!distribution) {
    ctx.addIssue({
      code: 'custom',
      path: [],
      message:
        'needs "value", "values", "min" and "max", "parameters" or a "distribution" (one of ' +
        `${SWEEP_DISTRIBUTIONS.join(', ')})`,
    });
    return;
  }
  const allowed = DISTRIBUTION_KEYS[distribution];
  for (const k of given) {
    if (k !== 'distribution' && !allowed.includes(k)) {
      ctx.addIssue({ code: 'custom', path: [k], message: `is not used by distribution ${distribution}: remove it` });
    }
  }
  const need = (key: 'value' | 'values' | 'min' | 'max' | 'a' | 'b'): void => {
    if (p[key] === undefined) {
      ctx.addIssue({ code: 'custom', path: [key], message: `is required for distribution ${distribution}` });
    }
  };
  if (distribution === 'constant') need('value');
  // Liftoff takes no default for the shape: a beta without both is most likely a typo, and W&B's are not documented.
  if (allowed.includes('a')) {
    need('a');
    need('b');
  }
  if (distribution === 'categorical') {
    need('values');
    if (p.probabilities && p.values && p.probabilities.length !== p.values.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['probabilities'],
        message: `must have one entry per value (${p.values.length})`,
      });
    } else if (p.probabilities && Math.abs(p.probabilities.reduce((a, b) => a + b, 0) - 1) > 1e-6) {
      ctx.addIssue({ code: 'custom', path: ['probabilities'], message: 'must sum to 1' });
    }
  }
  if (allowed.includes('min')) {
    need('min');
    need('max');
    if (p.min !== undefined && p.max !== undefined && !(p.max > p.min)) {
      ctx.addIssue({ code: 'custom', path: ['max'], message: `must be greater than min (${p.min})` });
    }
    if (distribution === 'int_uniform') {
      for (const k of ['min', 'max'] as const) {
        if (p[k] !== undefined && !Number.isInteger(p[k])) {
          ctx.addIssue({ code: 'custom', path: [k], message: 'must be an integer for distribution int_uniform' });
        }
      }
    }
    if (POSITIVE_BOUNDS.has(distribution) && p.min !== undefined && p.min <= 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['min'],
        message: `must be greater than 0 for distribution ${distribution}`,
      });
    }
  }
}

export const SweepMethod = z.enum(['grid', 'random', 'bayes']);
export type SweepMethod = z.infer<typeof SweepMethod>;

export const SweepMetric = z
  .object({
    name: z.string().min(1).max(200),
    goal: z.enum(['minimize', 'maximize']).default('minimize'),
    target: Finite.optional(),
  })
  .strict();
export type SweepMetric = z.infer<typeof SweepMetric>;

export const SweepEarlyTerminate = z
  .object({
    type: z.enum(['hyperband']),
    min_iter: z.number().int().min(1).max(1_000_000).optional(),
    max_iter: z.number().int().min(1).max(1_000_000).optional(),
    s: z.number().int().min(1).max(100).optional(),
    eta: Finite.refine((e) => e > 1, { message: 'must be greater than 1' }).default(3),
    /** W&B's strict mode: compare each trial's best value so far instead of its value at the bracket. */
    strict: z.boolean().optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.min_iter === undefined && e.max_iter === undefined) {
      ctx.addIssue({ code: 'custom', path: ['min_iter'], message: 'hyperband needs min_iter or max_iter' });
    }
    if (e.min_iter !== undefined && e.max_iter !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['max_iter'], message: 'give min_iter or max_iter, not both' });
    }
    if (e.max_iter !== undefined && e.s === undefined) {
      ctx.addIssue({ code: 'custom', path: ['s'], message: 'is required with max_iter (the number of brackets)' });
    }
  });
export type SweepEarlyTerminate = z.infer<typeof SweepEarlyTerminate>;

/** The `${…}` macros a `command` may hold (W&B's, but `${args_json_file}`: Liftoff writes no files for a trial). */
export const SWEEP_COMMAND_MACROS = ['env', 'interpreter', 'program', 'args', 'args_no_hyphens', 'args_json'] as const;

/**
 * Keys of W&B's launch-sweep files that mean nothing here: accepted, each with a note saying what Liftoff does
 * instead (`wandb launch-sweep` reads them; ../shared/reference/wandb-launch.md §8).
 */
export const SWEEP_LAUNCH_KEY_NOTES = {
  scheduler:
    '"scheduler" is ignored: the Liftoff server proposes trials itself, so no scheduler job runs or takes an agent slot (parallelism is --parallel)',
  launch:
    '"launch" is ignored: the queue comes from -q, the trials\' priority from -P and their source from --code, --git or --image',
  job: "\"job\" names the trials' Liftoff job (docs/jobs.md), of the sweep's entity (W&B's project part is dropped), unless sweep create is given --job, --code, --git or --image",
  image_uri: '"image_uri" is ignored: pass the image as --image IMAGE',
} as const;

const Passthrough = z.unknown().optional();

/** W&B's job reference as a launch-sweep file's `job` holds it: `[entity/[project/]]name[:alias]`. */
export const SWEEP_JOB_REF = /^(?:(?:([^/:\s]+)\/)?([^/:\s]+)\/)?([^/:\s]+)(?::([^/:\s]+))?$/;

/** The parts of a sweep config's `job` (SWEEP_JOB_REF). */
export function parseSweepJobRef(ref: string): { entity?: string; name: string; version?: string } | undefined {
  const m = SWEEP_JOB_REF.exec(ref);
  if (!m) return undefined;
  const [, entity, , name, version] = m;
  return { name: name as string, ...(entity ? { entity } : {}), ...(version ? { version } : {}) };
}

export const SweepConfig = z
  .object({
    name: z.string().min(1).max(200).optional(),
    description: z.string().max(10_000).optional(),
    /** Kept for the trials' runs as their project (W&B's `project`). */
    project: z.string().min(1).max(128).optional(),
    /** Must be the sweep's entity when given (the entity comes from the request, `-e`). */
    entity: z.string().min(1).max(200).optional(),
    program: z.string().min(1).max(4096).optional(),
    command: z.array(z.string().min(1).max(4096)).min(1).max(1000).optional(),
    method: SweepMethod,
    metric: SweepMetric.optional(),
    parameters: z.record(ParameterName, SweepParameter),
    early_terminate: SweepEarlyTerminate.optional(),
    run_cap: z.number().int().min(1).max(1_000_000).optional(),
    scheduler: Passthrough,
    launch: Passthrough,
    /** W&B's job reference `[entity/[project/]]name[:alias]`: the trials run that Liftoff job (sweepJob). */
    job: z.string().regex(SWEEP_JOB_REF, 'must be [entity/[project/]]name[:alias]').optional(),
    image_uri: Passthrough,
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!Object.keys(c.parameters).length) {
      ctx.addIssue({ code: 'custom', path: ['parameters'], message: 'must name at least one parameter' });
    }
    if (c.method === 'bayes' && !c.metric) {
      ctx.addIssue({
        code: 'custom',
        path: ['metric'],
        message: 'is required for method bayes (it models the metric)',
      });
    }
    if (c.early_terminate && !c.metric) {
      ctx.addIssue({ code: 'custom', path: ['metric'], message: 'is required with early_terminate' });
    }
    if (c.method === 'grid') {
      for (const path of leafPaths(c.parameters)) {
        const p = path.param;
        if (p.distribution !== 'constant' && p.distribution !== 'categorical') {
          ctx.addIssue({
            code: 'custom',
            path: ['parameters', ...path.configPath],
            message: `method grid needs "values" or "value", not distribution ${String(p.distribution)}`,
          });
        }
      }
    }
    c.command?.forEach((part, i) => {
      for (const m of part.matchAll(/\$\{([^}]*)\}/g)) {
        const name = m[1] ?? '';
        if (!(SWEEP_COMMAND_MACROS as readonly string[]).includes(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['command', i],
            message: `unknown macro \${${name}}: the macros are ${SWEEP_COMMAND_MACROS.map((n) => `\${${n}}`).join(', ')}`,
          });
        }
      }
    });
    if (c.command?.some((part) => part.includes('${program}')) && !c.program) {
      ctx.addIssue({ code: 'custom', path: ['program'], message: 'is required: the command uses ${program}' });
    }
  });
export type SweepConfig = z.infer<typeof SweepConfig>;

/** A leaf parameter and where it sits: `configPath` in `parameters` (with "parameters" between levels), `keys` in the run config. */
export interface SweepLeaf {
  keys: string[];
  configPath: string[];
  param: SweepParameter;
}

/** The leaf parameters in their config order (nested ones depth first): the order grid enumerates them in. */
export function leafPaths(parameters: Record<string, SweepParameter>, keys: string[] = []): SweepLeaf[] {
  return Object.entries(parameters).flatMap(([name, param]) =>
    param.parameters
      ? leafPaths(param.parameters, [...keys, name]).map((l) => ({
          ...l,
          configPath: [name, 'parameters', ...l.configPath],
        }))
      : [{ keys: [...keys, name], configPath: [name], param }],
  );
}

/** A parsed sweep config and the notes on keys it holds that Liftoff does not use. */
export interface ParsedSweepConfig {
  config: SweepConfig;
  notes: string[];
}

/**
 * Validates a sweep config already parsed from YAML or JSON. A parameter without a distribution gets W&B's default:
 * `value` → constant, `values` → categorical, integer `min`/`max` → int_uniform, other bounds → uniform. JSON cannot
 * tell 1.0 from 1, so `parseSweepConfigYaml` (which can) fills the distribution in before a file is sent.
 */
export function parseSweepConfig(raw: unknown, source: string, integers?: ReadonlySet<string>): ParsedSweepConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigInvalidError(source, ['the top level must be a mapping of keys (method, metric, parameters, ...)']);
  }
  const withDefaults = inferDistributions(raw as Record<string, unknown>, integers);
  const parsed = SweepConfig.safeParse(withDefaults);
  if (!parsed.success) throw new ConfigInvalidError(source, describeIssues(parsed.error, withDefaults));
  const notes = Object.entries(SWEEP_LAUNCH_KEY_NOTES)
    .filter(([key]) => (parsed.data as Record<string, unknown>)[key] !== undefined)
    .map(([, note]) => note);
  return { config: parsed.data, notes };
}

/** Parses the YAML (or JSON) text of a sweep config file; `source` names it in messages. */
export function parseSweepConfigYaml(text: string, source: string): ParsedSweepConfig {
  // Integers are read as BigInt so that `min: 0.0` stays a float bound (uniform), as in W&B's Python loader.
  const doc = parseDocument(text, { intAsBigInt: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigInvalidError(
      source,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const [first = ''] = e.message.split('\n');
        return `it is not valid YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${first.replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
    );
  }
  const integers = new Set<string>();
  const raw = unBigInt(doc.toJS({ maxAliasCount: 100 }) as unknown, [], integers);
  return parseSweepConfig(raw, source, integers);
}

function unBigInt(v: unknown, path: PropertyKey[], integers: Set<string>): unknown {
  if (typeof v === 'bigint') {
    integers.add(formatPath(path));
    return Number(v);
  }
  if (Array.isArray(v)) return v.map((x, i) => unBigInt(x, [...path, i], integers));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unBigInt(x, [...path, k], integers)]));
  }
  return v;
}

function inferDistributions(raw: Record<string, unknown>, integers?: ReadonlySet<string>): Record<string, unknown> {
  const isInt = (path: PropertyKey[], n: unknown): boolean =>
    integers ? integers.has(formatPath(path)) : Number.isInteger(n);
  const walk = (params: unknown, path: PropertyKey[]): unknown => {
    if (params === null || typeof params !== 'object' || Array.isArray(params)) return params;
    return Object.fromEntries(
      Object.entries(params).map(([name, p]) => {
        if (p === null || typeof p !== 'object' || Array.isArray(p)) return [name, p];
        const param = { ...(p as Record<string, unknown>) };
        const here = [...path, name];
        if (param.parameters !== undefined) {
          param.parameters = walk(param.parameters, [...here, 'parameters']);
        } else if (param.distribution === undefined) {
          if ('value' in param) param.distribution = 'constant';
          else if (param.values !== undefined) param.distribution = 'categorical';
          else if (param.min !== undefined && param.max !== undefined) {
            const ints = isInt([...here, 'min'], param.min) && isInt([...here, 'max'], param.max);
            param.distribution = ints ? 'int_uniform' : 'uniform';
          }
        }
        return [name, param];
      }),
    );
  };
  return raw.parameters === undefined ? raw : { ...raw, parameters: walk(raw.parameters, ['parameters']) };
}
