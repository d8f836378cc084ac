import protobuf from 'protobufjs';
import { InvalidArgument } from './protos.js';

/**
 * What Google's JSON transcoding refuses but `proto3-json-serializer` lets through (seen here: it drops unknown
 * fields and unknown enum names silently and reads int64 "abc" as 0). Hand-written because no maintained package
 * does strict proto3 JSON checking against a protobufjs type; the rules are the protobuf JSON mapping's
 * (https://protobuf.dev/programming-guides/json/), with Google's wording for unknown names. Returns the value with
 * every field under its lowerCamelCase name: the mapping says parsers accept the original (snake_case) name too,
 * and this serializer version reads only the camelCase one.
 */
export function strictCheck(type: protobuf.Type, value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgument(
      `Invalid value at '${path}' (type.googleapis.com/${type.fullName.slice(1)}), ${JSON.stringify(value)}`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields[key] ?? type.fieldsArray.find((f) => snake(f.name) === key);
    if (!field)
      throw new InvalidArgument(
        `Invalid JSON payload received. Unknown name "${key}" at '${path}': Cannot find field.`,
      );
    if (field.name in out)
      throw new InvalidArgument(`Invalid JSON payload received. Duplicate field "${key}" at '${path}'.`);
    if (v === null) continue;
    const at = `${path}.${snake(field.name)}`;
    field.resolve();
    if (field.map) {
      if (typeof v !== 'object' || Array.isArray(v)) throw invalid(at, v);
      out[field.name] = Object.fromEntries(
        Object.entries(v as object).map(([k, item]) => [k, checkValue(field, item, `${at}[${JSON.stringify(k)}]`)]),
      );
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw invalid(at, v);
      out[field.name] = v.map((item, i) => checkValue(field, item, `${at}[${i}]`));
    } else out[field.name] = checkValue(field, v, at);
  }
  return out;
}

const WELL_KNOWN: Record<string, (v: unknown) => boolean> = {
  '.google.protobuf.Duration': (v) => typeof v === 'string' && /^-?\d+(\.\d{1,9})?s$/.test(v),
  '.google.protobuf.Timestamp': (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
  '.google.protobuf.Struct': (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  '.google.protobuf.Value': () => true,
  '.google.protobuf.ListValue': (v) => Array.isArray(v),
  '.google.protobuf.Empty': (v) => typeof v === 'object' && v !== null,
  '.google.protobuf.FieldMask': (v) => typeof v === 'string',
};

function checkValue(field: protobuf.Field, v: unknown, at: string): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) {
    if (
      typeof v === 'string' ? !(v in t.values) : !(Number.isInteger(v) && Object.values(t.values).includes(v as number))
    ) {
      throw new InvalidArgument(
        `Invalid value at '${at}' (type.googleapis.com/${t.fullName.slice(1)}), ${JSON.stringify(v)}`,
      );
    }
    return v;
  }
  if (t instanceof protobuf.Type) {
    const wk = WELL_KNOWN[t.fullName];
    if (wk) {
      if (!wk(v)) throw invalid(at, v, t.fullName.slice(1));
      return v;
    }
    if (t.fullName.startsWith('.google.protobuf.') && t.fullName.endsWith('Value')) return v; // wrappers
    return strictCheck(t, v, at);
  }
  const ok = SCALARS[field.type]?.(v) ?? false;
  if (!ok) throw invalid(at, v, field.type);
  return v;
}

const int = (v: unknown) =>
  (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v));
const num = (v: unknown) =>
  typeof v === 'number' ||
  (typeof v === 'string' && (/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v) || ['NaN', 'Infinity', '-Infinity'].includes(v)));
const SCALARS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  bool: (v) => typeof v === 'boolean',
  bytes: (v) => typeof v === 'string' && /^[A-Za-z0-9+/_-]*=*$/.test(v),
  int32: int,
  int64: int,
  uint32: int,
  uint64: int,
  sint32: int,
  sint64: int,
  fixed32: int,
  fixed64: int,
  sfixed32: int,
  sfixed64: int,
  double: num,
  float: num,
};

const invalid = (at: string, v: unknown, type?: string) =>
  new InvalidArgument(`Invalid value at '${at}'${type ? ` (${type})` : ''}, ${JSON.stringify(v)}`);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
