import { randomBytes, randomUUID } from 'node:crypto';
import type { V1Container, V1JobSpec, V1PodSpec } from '@kubernetes/client-node';

/** Wire-format metadata (times are RFC 3339 strings on the wire, unlike client-node's Date-typed models). */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string;
  lastUpdateTime?: string;
}

export interface ContainerStateTerminated {
  exitCode: number;
  signal?: number;
  reason?: string;
  message?: string;
  startedAt?: string;
  finishedAt?: string;
  containerID?: string;
}
export interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: ContainerStateTerminated;
}
export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState;
}

export interface PodStatus {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  conditions?: Condition[];
  message?: string;
  reason?: string;
  hostIP?: string;
  hostIPs?: Array<{ ip: string }>;
  podIP?: string;
  podIPs?: Array<{ ip: string }>;
  startTime?: string;
  initContainerStatuses?: ContainerStatus[];
  containerStatuses?: ContainerStatus[];
  qosClass?: string;
  nominatedNodeName?: string;
}

export interface Pod extends KObject {
  spec: V1PodSpec;
  status?: PodStatus;
}

export interface JobStatus {
  conditions?: Condition[];
  startTime?: string;
  completionTime?: string;
  active?: number;
  ready?: number;
  terminating?: number;
  succeeded?: number;
  failed?: number;
  uncountedTerminatedPods?: { succeeded?: string[]; failed?: string[] };
}

export interface Job extends KObject {
  spec: V1JobSpec;
  status?: JobStatus;
}

export type Container = V1Container;

/** A `Status` failure, thrown anywhere in the fake and written to the wire as-is. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: Record<string, unknown>;
  code: number;
}

export class KubeError extends Error {
  constructor(readonly body: StatusBody) {
    super(body.message);
  }
  get code(): number {
    return this.body.code;
  }
}

export function failure(code: number, reason: string, message: string, details?: Record<string, unknown>): KubeError {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) body.details = details;
  return new KubeError(body);
}

/** `resource` is the plural, optionally qualified by group (`jobs.batch`), as the apiserver words its messages. */
export function notFound(resource: string, name: string): KubeError {
  const [kind, ...group] = resource.split('.');
  return failure(404, 'NotFound', `${resource} "${name}" not found`, { name, group: group.join('.'), kind });
}

export function alreadyExists(resource: string, name: string): KubeError {
  const [kind, ...group] = resource.split('.');
  return failure(409, 'AlreadyExists', `${resource} "${name}" already exists`, {
    name,
    group: group.join('.'),
    kind,
  });
}

export function conflict(resource: string, name: string, why: string): KubeError {
  const [kind, ...group] = resource.split('.');
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${name}": ${why}`, {
    name,
    group: group.join('.'),
    kind,
  });
}

export const badRequest = (message: string): KubeError => failure(400, 'BadRequest', message);

export interface FieldError {
  field: string;
  type: 'Required' | 'Invalid' | 'NotSupported' | 'Duplicate' | 'Forbidden' | 'NotFound' | 'TooLong';
  detail?: string;
  value?: unknown;
}

const causeReason: Record<FieldError['type'], string> = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  NotSupported: 'FieldValueNotSupported',
  Duplicate: 'FieldValueDuplicate',
  Forbidden: 'FieldValueForbidden',
  NotFound: 'FieldValueNotFound',
  TooLong: 'FieldValueTooLong',
};

function fieldErrorBody(e: FieldError): string {
  const shown = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v ?? null));
  switch (e.type) {
    case 'Required':
      return `Required value${e.detail ? `: ${e.detail}` : ''}`;
    case 'Invalid':
      return `Invalid value: ${shown(e.value)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'NotSupported':
      return `Unsupported value: ${shown(e.value)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'Duplicate':
      return `Duplicate value: ${shown(e.value)}`;
    case 'NotFound':
      return `Not found: ${shown(e.value)}`;
    case 'Forbidden':
      return `Forbidden${e.detail ? `: ${e.detail}` : ''}`;
    case 'TooLong':
      return `Too long: ${e.detail ?? ''}`;
  }
}

/** 422 Invalid, worded like apimachinery's `errors.NewInvalid` (one error inline, several in brackets). */
export function invalid(kind: string, group: string, name: string, errs: FieldError[]): KubeError {
  const parts = errs.map((e) => `${e.field}: ${fieldErrorBody(e)}`);
  const qualified = group ? `${kind}.${group}` : kind;
  const message = `${qualified} "${name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`}`;
  return failure(422, 'Invalid', message, {
    name,
    group,
    kind,
    causes: errs.map((e) => ({ reason: causeReason[e.type], message: fieldErrorBody(e), field: e.field })),
  });
}

/** RFC 3339 at second precision, as metav1.Time serializes. */
export function rfc3339(d: Date | number = new Date()): string {
  return new Date(d).toISOString().replace(/\.\d+Z$/, 'Z');
}

export const newUid = (): string => randomUUID();

/** The alphabet of apimachinery's `utilrand.String` (no vowels, no look-alikes), used for generateName suffixes. */
const ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';
export function randomSuffix(n = 5): string {
  const bytes = randomBytes(n);
  let s = '';
  for (const b of bytes) s += ALPHANUMS[b % ALPHANUMS.length];
  return s;
}

export const clone = <T>(v: T): T => structuredClone(v);

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A JSON value as text, for messages that quote what the client sent. */
export const text = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined'));
