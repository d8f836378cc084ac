import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { JobSchemaInvalidError, RunConfigSchemaError } from './errors.js';
import { JOB_SCHEMA_MAX_BYTES } from './jobs.js';

/**
 * A job's run-config schema, checked with ajv (a well-kept JSON Schema validator) rather than by hand. The schema
 * comes from any member of an entity, so it is hostile input too: it must be a valid schema (strict mode refuses
 * unknown keywords), small, and may not hold `pattern`/`patternProperties` (a user's regular expression run over
 * every launch's config could be made to backtrack for minutes) nor `$ref`s outside itself (nothing is fetched).
 * `@liftoff/core/jobSchema` is an entry of its own so the web bundle does not carry ajv.
 */
const ajv = new Ajv2020({ allErrors: true, strict: true, validateFormats: false, allowUnionTypes: true });

/** Keywords whose members are named by the user (property names), not keywords. */
const NAMED = new Set(['properties', '$defs', 'definitions', 'dependentSchemas']);
/** Keywords whose values are data, not schemas. */
const DATA = new Set(['enum', 'const', 'default', 'examples', 'required', 'dependentRequired']);

function refuseKeywords(node: unknown, path: string): void {
  if (Array.isArray(node)) return node.forEach((n, i) => refuseKeywords(n, `${path}/${i}`));
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (DATA.has(k)) continue;
    if (NAMED.has(k) && v !== null && typeof v === 'object') {
      for (const [name, sub] of Object.entries(v as Record<string, unknown>))
        refuseKeywords(sub, `${path}/${k}/${name}`);
      continue;
    }
    if (k === 'pattern' || k === 'patternProperties')
      throw new JobSchemaInvalidError(
        `"${k}" at ${path || '/'} is not allowed (regular expressions of users are not run); use "enum" or check it in the job.`,
      );
    if (k === '$ref' && (typeof v !== 'string' || !v.startsWith('#')))
      throw new JobSchemaInvalidError(`"$ref" at ${path || '/'} must point inside the schema ("#/...").`);
    refuseKeywords(v, `${path}/${k}`);
  }
}

export type RunConfigValidator = (config: Record<string, unknown>) => string[];

/** Checks a job's schema and returns a validator of run configs (problems, one line each, naming the key). */
export function compileJobSchema(schema: Record<string, unknown>): RunConfigValidator {
  const bytes = Buffer.byteLength(JSON.stringify(schema));
  if (bytes > JOB_SCHEMA_MAX_BYTES)
    throw new JobSchemaInvalidError(`it is ${bytes} bytes; at most ${JOB_SCHEMA_MAX_BYTES} are allowed.`);
  if (schema.type !== undefined && schema.type !== 'object')
    throw new JobSchemaInvalidError('a run config is a mapping, so the top-level "type" must be "object".');
  refuseKeywords(schema, '');
  const { $schema: _ignored, $id: _id, ...rest } = schema;
  let validate;
  try {
    validate = ajv.compile(rest);
  } catch (e) {
    throw new JobSchemaInvalidError((e as Error).message);
  } finally {
    // compile caches by schema; the server sees many schemas over its life, so it keeps none.
    ajv.removeSchema(rest);
  }
  return (config) => (validate(config) ? [] : (validate.errors ?? []).map(describeProblem));
}

/** `lr: must be <= 1`, `epochs: is required`, `extra: is not allowed`: the key first, then what is wrong. */
function describeProblem(e: ErrorObject): string {
  const at = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (e.keyword === 'required')
    return `${[...at, (e.params as { missingProperty: string }).missingProperty].join('.')}: is required`;
  if (e.keyword === 'additionalProperties')
    return `${[...at, (e.params as { additionalProperty: string }).additionalProperty].join('.')}: is not allowed by the schema`;
  const extra =
    e.keyword === 'enum' ? ` (${JSON.stringify((e.params as { allowedValues: unknown }).allowedValues)})` : '';
  return `${at.length ? at.join('.') : '(run config)'}: ${e.message ?? e.keyword}${extra}`;
}

/** Throws RunConfigSchemaError (every problem, one line each) unless `config` satisfies the job's schema. */
export function assertRunConfig(
  job: string,
  schema: Record<string, unknown> | null,
  config: Record<string, unknown>,
): void {
  if (!schema) return;
  const problems = compileJobSchema(schema)(config);
  if (problems.length) throw new RunConfigSchemaError(job, problems);
}
