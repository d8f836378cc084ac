import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ROOT } from '../procs.js';

/** The subset of botocore's service-2.json the validator reads. */
export interface Shape {
  type: string;
  members?: Record<string, { shape: string }>;
  required?: string[];
  member?: { shape: string };
  key?: { shape: string };
  value?: { shape: string };
  min?: number;
  max?: number;
  pattern?: string;
  enum?: string[];
}

export interface ServiceModel {
  metadata: { targetPrefix?: string; protocol: string; endpointPrefix: string; apiVersion: string };
  operations: Record<string, { input?: { shape: string }; output?: { shape: string } }>;
  shapes: Record<string, Shape>;
}

export const MODEL_DIRS = {
  sagemaker: 'sagemaker/2017-07-24',
  logs: 'logs/2014-03-28',
  ecr: 'ecr/2015-09-21',
  sts: 'sts/2011-06-15',
} as const;
export type ModelName = keyof typeof MODEL_DIRS;

/**
 * Where botocore's models are, from scripts/services/aws-models.sh (which also checks moto_server and the AWS CLI).
 * Missing: undefined with a loud skip, unless LIFTOFF_REQUIRE_SERVICES=1, where the script's failure is rethrown.
 */
export function awsModelsDir(): string | undefined {
  try {
    const out = execFileSync('bash', [join(ROOT, 'scripts', 'services', 'aws-models.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return out.trim().split('\n').pop();
  } catch (e) {
    const reason = `AWS models or tools missing: ${String((e as { stderr?: string }).stderr ?? e).trim()}`;
    if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
    console.warn(`\n*** SKIPPING AWS suites: ${reason} ***\n`);
    return undefined;
  }
}

export function loadModel(dir: string, name: ModelName): ServiceModel {
  const base = join(dir, MODEL_DIRS[name], 'service-2.json');
  const raw = existsSync(`${base}.gz`) ? gunzipSync(readFileSync(`${base}.gz`)) : readFileSync(base);
  return JSON.parse(raw.toString('utf8')) as ServiceModel;
}

const regexCache = new Map<string, RegExp>();

/**
 * A model pattern as a FULL match: botocore's patterns are written for Java's `matches()`, and several lack `$`
 * (TrainingJobName's does), so a search would accept `abc_123` where AWS refuses it. No dotall flag: as in Java,
 * `.` stops at line terminators (the model writes `[\S\s]*` where it means any text, `.*` where it means one line).
 */
function fullMatch(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = new RegExp(`^(?:${pattern})$`, 'u');
    } catch {
      // Java-style escapes such as `\_` are invalid under the u flag; the non-Unicode flavour accepts them.
      re = new RegExp(`^(?:${pattern})$`);
    }
    regexCache.set(pattern, re);
  }
  return re;
}

/** AWS names members in its messages lower-camel: `algorithmSpecification.trainingImage`. */
const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

function quote(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return `'${s.length > 80 ? `${s.slice(0, 80)}...` : s}'`;
}

/**
 * Validates a decoded JSON input against a shape, collecting AWS-style messages ("Value ... at 'path' failed to
 * satisfy constraint: Member must ..."). Hand-written: no npm package validates botocore models; the rules are the
 * model's own (required, unknown members, min/max of strings, lists, maps and numbers, enums, patterns).
 */
export function validateShape(model: ServiceModel, shapeName: string, value: unknown, path: string, errs: string[]) {
  const shape = model.shapes[shapeName];
  if (!shape) throw new Error(`model has no shape ${shapeName}`);
  const at = path || 'input';
  const bad = (constraint: string) =>
    errs.push(`Value ${quote(value)} at '${at}' failed to satisfy constraint: Member must ${constraint}`);
  switch (shape.type) {
    case 'structure': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('be a structure');
      const obj = value as Record<string, unknown>;
      for (const req of shape.required ?? []) {
        if (obj[req] === undefined || obj[req] === null) {
          errs.push(`Value null at '${join2(path, req)}' failed to satisfy constraint: Member must not be null`);
        }
      }
      for (const [k, v] of Object.entries(obj)) {
        const m = shape.members?.[k];
        if (!m) {
          errs.push(`Unknown member '${k}' at '${at}': not a member of ${shapeName}`);
          continue;
        }
        if (v !== undefined && v !== null) validateShape(model, m.shape, v, join2(path, k), errs);
      }
      return;
    }
    case 'list': {
      if (!Array.isArray(value)) return bad('be a list');
      if (shape.min !== undefined && value.length < shape.min) bad(`have length greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && value.length > shape.max) bad(`have length less than or equal to ${shape.max}`);
      value.forEach((v, i) => validateShape(model, shape.member?.shape ?? '', v, `${at}.${i + 1}.member`, errs));
      return;
    }
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('be a map');
      const entries = Object.entries(value as Record<string, unknown>);
      if (shape.min !== undefined && entries.length < shape.min)
        bad(`have length greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && entries.length > shape.max) bad(`have length less than or equal to ${shape.max}`);
      for (const [k, v] of entries) {
        validateShape(model, shape.key?.shape ?? '', k, `${at}.key`, errs);
        validateShape(model, shape.value?.shape ?? '', v, `${at}.${k}.value`, errs);
      }
      return;
    }
    case 'string': {
      if (typeof value !== 'string') return bad('be a string');
      if (shape.min !== undefined && value.length < shape.min) bad(`have length greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && value.length > shape.max) bad(`have length less than or equal to ${shape.max}`);
      if (shape.enum && !shape.enum.includes(value)) bad(`satisfy enum value set: [${shape.enum.join(', ')}]`);
      if (shape.pattern && !fullMatch(shape.pattern).test(value))
        bad(`satisfy regular expression pattern: ${shape.pattern}`);
      return;
    }
    case 'integer':
    case 'long': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return bad('be an integer');
      if (shape.min !== undefined && value < shape.min) bad(`have value greater than or equal to ${shape.min}`);
      if (shape.max !== undefined && value > shape.max) bad(`have value less than or equal to ${shape.max}`);
      return;
    }
    case 'float':
    case 'double':
      if (typeof value !== 'number') return bad('be a number');
      return;
    case 'boolean':
      if (typeof value !== 'boolean') return bad('be a boolean');
      return;
    case 'timestamp':
      if (typeof value !== 'number' && typeof value !== 'string') return bad('be a timestamp');
      return;
    case 'blob':
      if (typeof value !== 'string') return bad('be base64 text');
      return;
    default:
      throw new Error(`shape type ${shape.type} not handled`);
  }
}

const join2 = (path: string, member: string) => (path ? `${path}.${lowerFirst(member)}` : lowerFirst(member));

/** All problems of one operation's input, or [] when AWS would accept it. */
export function validateInput(model: ServiceModel, operation: string, input: unknown): string[] {
  const op = model.operations[operation];
  if (!op) return [`Unknown operation ${operation}`];
  const errs: string[] = [];
  if (op.input) validateShape(model, op.input.shape, input ?? {}, '', errs);
  return errs;
}
