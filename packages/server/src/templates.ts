import {
  TemplateVariableError,
  type LaunchSpec,
  type TemplateVariables,
  type TemplateVariableSchema,
} from '@liftoff/core';

/**
 * Queue config templates, as W&B Launch has them: a queue's default resource_args may contain `{{name}}`
 * placeholders, each declared with a JSON schema. The server validates the pusher's values, fills them in and
 * merges the result into the item's spec at push time, so agents receive a spec without placeholders.
 */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
const WHOLE = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/;

function walk(v: unknown, onString: (s: string) => unknown): unknown {
  if (typeof v === 'string') return onString(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, onString));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, onString)]));
  return v;
}

export function placeholdersIn(config: unknown): string[] {
  const found = new Set<string>();
  walk(config, (s) => {
    for (const m of s.matchAll(PLACEHOLDER)) found.add(m[1] as string);
    return s;
  });
  return [...found];
}

/** Where the config has placeholders: the path of each string (or array element's parent) holding one, and the names. */
export function placeholderPaths(config: unknown, path: string[] = []): Array<{ path: string[]; names: string[] }> {
  if (typeof config === 'string') {
    const names = [...config.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
    return names.length ? [{ path, names }] : [];
  }
  if (Array.isArray(config)) {
    // An array is replaced whole by a merge, so a placeholder anywhere in it is the array's.
    const names = config.flatMap((x) => placeholderPaths(x).flatMap((p) => p.names));
    return names.length ? [{ path, names: [...new Set(names)] }] : [];
  }
  if (config && typeof config === 'object')
    return Object.entries(config).flatMap(([k, v]) => placeholderPaths(v, [...path, k]));
  return [];
}

const describeType = (t: TemplateVariableSchema['type']) => (t === 'integer' ? 'an integer' : `a ${t}`);

/** Checks one value against its schema; returns the value cast to the schema's type, or throws naming the rule. */
export function checkValue(name: string, schema: TemplateVariableSchema, raw: string | number): string | number {
  let value: string | number;
  if (schema.type === 'string') {
    if (typeof raw !== 'string')
      throw new TemplateVariableError(`Template variable "${name}" must be a string, got ${raw}.`);
    value = raw;
  } else {
    const n = typeof raw === 'number' ? raw : raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(n) || (schema.type === 'integer' && !Number.isInteger(n))) {
      throw new TemplateVariableError(
        `Template variable "${name}" must be ${describeType(schema.type)}, got ${JSON.stringify(raw)}.`,
      );
    }
    value = n;
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    throw new TemplateVariableError(
      `Template variable "${name}" must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, got ${JSON.stringify(value)}.`,
    );
  }
  if (typeof value === 'number' && schema.minimum !== undefined && value < schema.minimum)
    throw new TemplateVariableError(`Template variable "${name}" must be at least ${schema.minimum}, got ${value}.`);
  if (typeof value === 'number' && schema.maximum !== undefined && value > schema.maximum)
    throw new TemplateVariableError(`Template variable "${name}" must be at most ${schema.maximum}, got ${value}.`);
  return value;
}

/**
 * Validates the pushed values and fills the queue's resource_args. A string that is exactly `{{name}}` becomes the
 * typed value (so `"{{gpus}}"` becomes the number 2); a placeholder inside a longer string is replaced as text.
 */
export function fillTemplate(
  queueName: string,
  resourceArgs: LaunchSpec['resource_args'],
  variables: TemplateVariables,
  values: Record<string, string | number>,
): LaunchSpec['resource_args'] {
  const names = Object.keys(variables);
  for (const name of Object.keys(values)) {
    if (!(name in variables)) {
      throw new TemplateVariableError(
        names.length
          ? `Template variable "${name}" is not defined by queue "${queueName}"; it defines: ${names.join(', ')}.`
          : `Template variable "${name}" is not defined by queue "${queueName}"; it has no template variables.`,
      );
    }
  }
  const resolved = new Map<string, string | number>();
  for (const [name, { schema }] of Object.entries(variables)) {
    const raw = values[name] ?? schema.default;
    if (raw === undefined) continue;
    resolved.set(name, checkValue(name, schema, raw));
  }
  const need = (name: string) => {
    const v = resolved.get(name);
    if (v === undefined) {
      throw new TemplateVariableError(
        `Template variable "${name}" of queue "${queueName}" has no default and needs a value; pass it with --set-var ${name}=VALUE.`,
      );
    }
    return v;
  };
  return walk(resourceArgs, (s) => {
    const whole = WHOLE.exec(s);
    if (whole) return need(whole[1] as string);
    return s.replace(PLACEHOLDER, (_m, name: string) => String(need(name)));
  }) as LaunchSpec['resource_args'];
}
