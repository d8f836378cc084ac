import Dockerode from 'dockerode';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { googleError, json, listen, readBody } from '../gcpFake/http.js';
import { FakeCustomJobs, TERMINAL, type FakeJob } from './jobs.js';
import { FakeLogging } from './logging.js';
import { InvalidArgument, parseBody, typeOf } from './protos.js';

export { FAKE_LABEL } from './jobs.js';

export interface FakeVertex {
  /** Origin of the Vertex AI API (`<region>-aiplatform.googleapis.com`'s stand-in). */
  url: string;
  /** Origin of the Cloud Logging API. */
  loggingUrl: string;
  jobs: FakeCustomJobs;
  logging: FakeLogging;
  /** Every request as `METHOD path`, in order ("unknown ..." for routes the fake does not serve). */
  calls: string[];
  close(): Promise<void>;
}

export interface FakeVertexOptions {
  project: string;
  /** The project's number, which Vertex puts in the names it returns. */
  projectNumber?: string;
  /** Tokens accepted as `Authorization: Bearer` (the fake metadata server's). */
  acceptToken: (token: string) => boolean;
  /** The login Vertex's service agent pulls images with. */
  pullAuth?: () => { username: string; password: string; serveraddress?: string } | undefined;
  docker?: Dockerode;
}

const OUTPUT_ONLY = [
  'name',
  'state',
  'createTime',
  'startTime',
  'endTime',
  'updateTime',
  'error',
  'webAccessUris',
  'satisfiesPzs',
  'satisfiesPzi',
];
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/**
 * Vertex AI's JobService custom-job routes (the HTTP rules in protos.json) and Cloud Logging's entries:list, on two
 * loopback ports. Bodies are checked with the official types (protos.ts); labels with the documented label rules;
 * list filters are limited to a conjunction of `labels.<k>="<v>"` (what Liftoff's runner sends).
 */
export async function startFakeVertex(opts: FakeVertexOptions): Promise<FakeVertex> {
  const docker = opts.docker ?? new Dockerode();
  const logging = new FakeLogging(opts.project);
  const number = opts.projectNumber ?? '123456789012';
  const jobs = new FakeCustomJobs(docker, logging, number, opts.pullAuth ?? (() => undefined));
  const calls: string[] = [];
  const customJobType = typeOf('CustomJob');
  const authorized = (req: IncomingMessage, res: ServerResponse): boolean => {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (m?.[1] && opts.acceptToken(m[1])) return true;
    googleError(
      res,
      401,
      'UNAUTHENTICATED',
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
    );
    return false;
  };
  const projectOk = (p: string) => p === opts.project || p === number;

  const vertex = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://vertex');
    const path = decodeURIComponent(url.pathname);
    calls.push(`${req.method} ${path}`);
    if (!authorized(req, res)) return;
    const m = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/customJobs(?:\/(\d+))?(:cancel)?$/.exec(path);
    if (!m) {
      calls[calls.length - 1] = `unknown ${req.method} ${path}`;
      return googleError(res, 404, 'NOT_FOUND', `The fake Vertex AI has no route ${req.method} ${path}.`);
    }
    const [, project = '', location = '', id, cancel] = m;
    if (!projectOk(project))
      return googleError(res, 403, 'PERMISSION_DENIED', `Permission denied on resource project ${project}.`);
    const find = (): FakeJob | undefined => {
      const job = id ? jobs.jobs.get(id) : undefined;
      if (!job || !job.name.includes(`/locations/${location}/`)) {
        googleError(
          res,
          404,
          'NOT_FOUND',
          `The CustomJob does not exist: projects/${project}/locations/${location}/customJobs/${id}`,
        );
        return undefined;
      }
      return job;
    };
    if (req.method === 'POST' && !id && !cancel) {
      let body: unknown;
      try {
        body = JSON.parse((await readBody(req)).toString('utf8'));
      } catch {
        return googleError(res, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
      }
      let spec: Record<string, unknown>;
      try {
        spec = parseBody(customJobType, body, 'custom_job');
        for (const [k, v] of Object.entries((spec.labels as Record<string, string> | undefined) ?? {})) {
          if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) {
            throw new InvalidArgument(
              `Invalid label ${JSON.stringify(k)}: ${JSON.stringify(v)}. Label keys and values can contain only lowercase letters, numeric characters, underscores and dashes; keys start with a letter; at most 63 characters.`,
            );
          }
        }
      } catch (e) {
        if (e instanceof InvalidArgument) return googleError(res, 400, 'INVALID_ARGUMENT', e.message);
        throw e;
      }
      for (const k of OUTPUT_ONLY) delete spec[k];
      if (spec.labels && !Object.keys(spec.labels).length) delete spec.labels;
      return json(res, 200, jobs.view(jobs.create(location, spec)));
    }
    if (req.method === 'GET' && id && !cancel) {
      const job = find();
      if (job) json(res, 200, jobs.view(job));
      return;
    }
    if (req.method === 'POST' && id && cancel) {
      await readBody(req);
      const job = find();
      if (!job) return;
      if (TERMINAL.has(job.state)) {
        return googleError(
          res,
          400,
          'FAILED_PRECONDITION',
          `Cannot cancel the CustomJob ${job.name}: it is in a terminal state ${job.state}.`,
        );
      }
      jobs.cancel(job);
      return json(res, 200, {});
    }
    if (req.method === 'GET' && !id && !cancel) {
      const filter = url.searchParams.get('filter') ?? '';
      const labels = parseLabelFilter(filter);
      if (!labels)
        return googleError(
          res,
          400,
          'INVALID_ARGUMENT',
          `The fake Vertex AI supports only labels.<key>="<value>" terms joined by AND (filter: ${filter}).`,
        );
      const size = Math.min(Number(url.searchParams.get('pageSize') ?? 100) || 100, 100);
      const start = Number(url.searchParams.get('pageToken') || 0);
      const all = [...jobs.jobs.values()]
        .filter((j) => j.name.includes(`/locations/${location}/`))
        .filter((j) => labels.every(([k, v]) => (j.spec.labels as Record<string, string> | undefined)?.[k] === v))
        .sort((a, b) => b.createTime.localeCompare(a.createTime));
      const page = all.slice(start, start + size);
      return json(res, 200, {
        ...(page.length ? { customJobs: page.map((j) => jobs.view(j)) } : {}),
        ...(start + size < all.length ? { nextPageToken: String(start + size) } : {}),
      });
    }
    googleError(res, 405, 'INVALID_ARGUMENT', `Method ${req.method} not allowed on ${path}.`);
  });

  const logs = await listen(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://logging').pathname;
    calls.push(`${req.method} logging${path}`);
    if (!authorized(req, res)) return;
    if (req.method === 'POST' && path === '/v2/entries:list') return logging.list(req, res);
    calls[calls.length - 1] = `unknown ${req.method} logging${path}`;
    googleError(res, 404, 'NOT_FOUND', `The fake Cloud Logging has no route ${req.method} ${path}.`);
  });

  return {
    url: vertex.url,
    loggingUrl: logs.url,
    jobs,
    logging,
    calls,
    async close() {
      await Promise.all([...jobs.jobs.values()].map((j) => (jobs.cancel(j), j.done)));
      await jobs.close();
    },
  };
}

function parseLabelFilter(filter: string): Array<[string, string]> | undefined {
  const out: Array<[string, string]> = [];
  for (const term of filter.split(/\s+AND\s+/)) {
    const m = /^labels\.([a-z][a-z0-9_-]*)\s*=\s*"([a-z0-9_-]*)"$/.exec(term.trim());
    if (!m) return undefined;
    out.push([m[1] ?? '', m[2] ?? '']);
  }
  return out;
}
