import { createRequire } from 'node:module';
import { fromProto3JSON, toProto3JSON } from 'proto3-json-serializer';
import protobuf from 'protobufjs';
import { strictCheck } from './strict.js';

/**
 * The Vertex AI v1 types from the official SDK's own `protos.json` (`@google-cloud/aiplatform@6.11.0`), parsed by
 * Google's proto3 JSON serializer: what the real service's JSON transcoding accepts (both field spellings, Duration
 * as "3600s", enums by name), and nothing else (wrong types, unknown enum values, unknown fields throw).
 */
const require = createRequire(import.meta.url);
const root = protobuf.Root.fromJSON(
  require('@google-cloud/aiplatform/build/protos/protos.json') as protobuf.INamespace,
);
const PKG = 'google.cloud.aiplatform.v1';

export const typeOf = (name: string): protobuf.Type => root.lookupType(`${PKG}.${name}`);
export const jobStates = (): string[] => Object.keys(root.lookupEnum(`${PKG}.JobState`).values);

export class InvalidArgument extends Error {}

type Json = Record<string, unknown>;

/**
 * A request body as `type` → its canonical proto3 JSON (lowerCamelCase, defaults omitted), or InvalidArgument with
 * the serializer's own words. Then every REQUIRED field (the `google.api.field_behavior` annotations in
 * protos.json, not a list of ours) of every message present must be set: Vertex's "Required field is not set".
 */
export function parseBody(type: protobuf.Type, body: unknown, what: string): Json {
  const camelCased = strictCheck(type, body, what);
  let message: protobuf.Message;
  try {
    message = fromProto3JSON(type, camelCased as never) as protobuf.Message;
  } catch (e) {
    throw new InvalidArgument(`Invalid JSON payload received. ${(e as Error).message}`);
  }
  if (!message) throw new InvalidArgument(`Invalid JSON payload received: ${what} must be an object.`);
  const canonical = toProto3JSON(message) as Json;
  const missing: string[] = [];
  requiredIn(type, canonical, what, missing);
  if (missing.length) {
    throw new InvalidArgument(
      `List of found errors:\t${missing.map((m, i) => `${i + 1}.Field: ${m}; Message: Required field is not set.\t`).join('')}`,
    );
  }
  return canonical;
}

const behaviour = (f: protobuf.Field): unknown => f.options?.['(google.api.field_behavior)'];

function requiredIn(type: protobuf.Type, value: Json, path: string, missing: string[]): void {
  for (const field of type.fieldsArray) {
    const key = field.name; // protos.json spells names in lowerCamelCase, as canonical JSON does
    const v = value[key];
    const at = `${path}.${snakeName(key)}`;
    const set = v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0);
    const b = behaviour(field);
    if (!set && (b === 'REQUIRED' || (Array.isArray(b) && b.includes('REQUIRED')))) missing.push(at);
    if (!set || field.map) continue;
    field.resolve();
    if (!(field.resolvedType instanceof protobuf.Type) || field.resolvedType.fullName.startsWith('.google.protobuf.')) {
      continue;
    }
    const items = field.repeated ? (v as Json[]) : [v as Json];
    items.forEach((item, i) =>
      requiredIn(field.resolvedType as protobuf.Type, item, field.repeated ? `${at}[${i}]` : at, missing),
    );
  }
}

const snakeName = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
