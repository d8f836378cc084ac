import {
  QueueConfigInvalidError,
  RESOURCE_TYPES,
  assertBaseImage,
  formatPath,
  localContainerArgsProblems,
  type ConfigProblem,
  type TemplateVariableSchema,
} from '@liftoff/core';
import { checkValue, placeholderPaths, placeholdersIn } from './templates.js';

/**
 * Every problem of a queue's config at once (issue 18): the body schema's issues and the checks of its resource
 * args and template, so a user fixes them in one round rather than one per request. Each problem names its field
 * (`resource_args.local-container.privileged`) and says what is wrong without naming a CLI flag, so the CLI prints
 * it as a line and the UI puts it beside the form field it is about.
 */

/** At most this many problems are listed; a hostile body may break a rule per element. */
const MAX_PROBLEMS = 20;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The issues of a failed body validation (fastify-type-provider-zod's), as problems. */
export function schemaProblems(err: { validation?: unknown }): ConfigProblem[] {
  const issues = (Array.isArray(err.validation) ? err.validation : []) as Array<{
    instancePath?: string;
    message?: string;
  }>;
  return issues.map((v) => ({
    field: formatPath((v.instancePath ?? '').replace(/^\//, '').split('/').filter(Boolean)),
    message: v.message ?? 'invalid',
  }));
}

/**
 * The checks beyond the body schema, run on the raw body so they also run when the schema failed elsewhere: only
 * the parts that have the right shape are looked at (the schema's own problems cover the rest).
 */
export function queueConfigProblems(body: unknown): ConfigProblem[] {
  if (!isPlainObject(body)) return [];
  const resource =
    body.resource === undefined
      ? 'local-process'
      : typeof body.resource === 'string' && (RESOURCE_TYPES as readonly string[]).includes(body.resource)
        ? body.resource
        : undefined;
  const args = isPlainObject(body.resource_args) ? body.resource_args : {};
  const variables = isPlainObject(body.template_variables) ? body.template_variables : {};
  const problems: ConfigProblem[] = [];

  if (resource) {
    for (const key of Object.keys(args).filter((k) => k !== resource)) {
      problems.push({
        field: `resource_args.${key}`,
        message: `a ${resource} queue's config holds only its "${resource}" section; remove the "${key}" section`,
      });
    }
  }

  for (const name of placeholdersIn(args).filter((p) => !(p in variables))) {
    problems.push({
      field: `template_variables.${name}`,
      message: `{{${name}}} is used in the config but not declared: add a template variable "${name}" with a schema, e.g. {"type": "string"}`,
    });
  }
  for (const [name, decl] of Object.entries(variables)) {
    const schema = (isPlainObject(decl) ? decl.schema : undefined) as TemplateVariableSchema | undefined;
    if (!isPlainObject(schema) || !['string', 'integer', 'number'].includes(schema.type)) continue;
    if (typeof schema.default === 'string' || typeof schema.default === 'number') {
      try {
        checkValue(name, schema, schema.default);
      } catch (e) {
        problems.push({
          field: `template_variables.${name}.schema.default`,
          message: (e as Error).message.replace(/^Template variable "[^"]+" /, 'the default '),
        });
      }
    }
    if (typeof schema.minimum === 'number' && typeof schema.maximum === 'number' && schema.minimum > schema.maximum)
      problems.push({
        field: `template_variables.${name}.schema`,
        message: `minimum ${schema.minimum} is above maximum ${schema.maximum}`,
      });
  }

  for (const [section, value] of Object.entries(args)) {
    if (!isPlainObject(value)) continue;
    const filled = withoutPlaceholders(value);
    if (section === 'local-container' && resource === 'local-container')
      problems.push(...localContainerArgsProblems(filled));
    const builder = filled.builder;
    if (isPlainObject(builder) && 'base_image' in builder) {
      try {
        assertBaseImage(builder.base_image, 'the base image');
      } catch (e) {
        problems.push({ field: `resource_args.${section}.builder.base_image`, message: (e as Error).message });
      }
    }
  }
  return problems;
}

/**
 * Values holding a `{{variable}}` only have a value at push (where the filled-in spec is checked again), so the
 * queue's defaults are checked without them.
 */
function withoutPlaceholders(section: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(section);
  for (const { path } of placeholderPaths(copy)) {
    let parent: unknown = copy;
    for (const key of path.slice(0, -1)) parent = isPlainObject(parent) ? parent[key] : undefined;
    const last = path.at(-1);
    if (isPlainObject(parent) && last !== undefined) delete parent[last];
  }
  return copy;
}

/**
 * Throws one QueueConfigInvalidError listing every problem (at most MAX_PROBLEMS) as `field: message` lines, which the
 * error answer also carries as its `problems` array; returns when there is none.
 */
export function assertQueueConfig(problems: readonly ConfigProblem[]): void {
  if (!problems.length) return;
  const lines = problems.slice(0, MAX_PROBLEMS).map((p) => (p.field ? `${p.field}: ${p.message}` : p.message));
  if (problems.length > MAX_PROBLEMS) lines.push(`and ${problems.length - MAX_PROBLEMS} more`);
  throw new QueueConfigInvalidError(lines);
}
