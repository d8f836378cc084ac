/**
 * The test Kubernetes API server (test/helpers/kube) driven by clients Liftoff did not write, over TLS with a bearer
 * token: the machine's `kubectl` (1.32) and the official Python client (Debian's python3-kubernetes, installed by
 * scripts/services/base.sh). Where they agree with the server, the server speaks the wire API as they expect it
 * from kube-apiserver: discovery, get/list (paged)/watch (resumed from a resourceVersion, and after a 410), logs -f,
 * deletes with both propagation policies, Secrets, unknown-field warnings and refusals with their Status bodies.
 * kubectl runs with --validate=false: the server does not serve the OpenAPI documents client-side validation reads.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, dockerAvailable } from '../helpers/docker.js';
import { selfSignedCert, startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { tempDir } from '../helpers/procs.js';

const PYTHON = '/usr/bin/python3';
const PYCLIENT = join(import.meta.dirname, 'pyclient.py');

/** kubectl and Debian's Python client: missing, the suite skips loudly unless LIFTOFF_REQUIRE_SERVICES=1. */
function clientsAvailable(): boolean {
  const missing: string[] = [];
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
  } catch {
    missing.push('kubectl (scripts/services/kubectl.sh)');
  }
  try {
    execFileSync(PYTHON, ['-c', 'import kubernetes'], { stdio: 'ignore' });
  } catch {
    missing.push('python3-kubernetes (scripts/services/base.sh)');
  }
  if (!missing.length) return true;
  const reason = `${missing.join(' and ')} missing`;
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING real-client suite: ${reason} ***\n`);
  return false;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

const run = (file: string, args: string[], timeout = 60_000): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(file, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });

const jobManifest = (name: string, script: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name },
  spec: {
    backoffLimit: 0,
    template: {
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: BUSYBOX, command: ['sh', '-c', script], ...extra }],
      },
    },
  },
});

describe.skipIf(!dockerAvailable() || !clientsAvailable())(
  'the test API server, driven by kubectl and the Python client over TLS',
  () => {
    let kube: FakeKube;
    let kubeconfig: string;
    const dir = tempDir('liftoff-realclients-');
    let files = 0;

    // Its own discovery cache: kubectl would otherwise write under ~/.kube/cache.
    const kubectl = (...args: string[]) =>
      run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kubectl-cache'), ...args]);
    const py = async (op: string, args: Record<string, unknown> = {}): Promise<any> => {
      const r = await run(PYTHON, [PYCLIENT, kubeconfig, op, JSON.stringify(args)]);
      if (r.code !== 0) throw new Error(`pyclient ${op} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const file = (obj: unknown): string => {
      const path = join(dir, `manifest-${++files}.json`);
      writeFileSync(path, JSON.stringify(obj));
      return path;
    };

    beforeAll(async () => {
      const cert = await selfSignedCert(join(dir, 'tls'));
      kube = await startFakeKube({ tls: { key: cert.key, cert: cert.cert } });
      kubeconfig = await kube.writeKubeconfig(dir, { namespace: 'default' });
    });

    afterAll(async () => {
      await kube?.close();
    });

    it('kubectl: discovery and a bearer token over TLS; an unknown field is dropped with the Warning kubectl prints', async () => {
      const ns = await kubectl('get', 'namespaces', '-o', 'name');
      expect(ns).toMatchObject({ code: 0, stdout: 'namespace/default\n' });
      expect(kube.requests.some((r) => r.path === '/api/v1/namespaces')).toBe(true);

      // --validate=false is fieldValidation=Ignore: the field is dropped without a word.
      const quiet = jobManifest('quiet', 'true', { bogusField: 'x' });
      const ignored = await kubectl('create', '--validate=false', '-f', file(quiet));
      expect(ignored).toMatchObject({ code: 0, stdout: 'job.batch/quiet created\n', stderr: '' });
      expect(kube.requests.find((r) => r.method === 'POST')?.query.fieldValidation).toBe('Ignore');
      expect(kube.get('Job', 'default', 'quiet').spec.template.spec.containers[0]).not.toHaveProperty('bogusField');

      // The default (what a client that does not ask gets) is Warn: dropped, with a Warning kubectl prints.
      const typo = jobManifest('typo', 'echo one; sleep 1; echo two', { bogusField: 'x' });
      const created = await kubectl('create', '--raw', '/apis/batch/v1/namespaces/default/jobs', '-f', file(typo));
      expect(created.code).toBe(0);
      expect(JSON.parse(created.stdout).metadata.name).toBe('typo');
      expect(created.stderr).toContain('Warning: unknown field "spec.template.spec.containers[0].bogusField"');
      const got = await kubectl('get', 'job', 'typo', '-o', 'json');
      expect(JSON.parse(got.stdout).spec.template.spec.containers[0]).not.toHaveProperty('bogusField');

      // As on a real cluster, a container still being created has no log yet ("is waiting to start"): wait for it.
      await kube.waitFor(
        () =>
          kube
            .list('Pod', 'default')
            .some((p) => p.metadata.labels?.['job-name'] === 'typo' && p.status?.phase !== 'Pending'),
        30_000,
        'the typo pod started',
      );
      // logs -f (follow=true) on the Job: kubectl finds its pod by the Job's selector and streams to the end.
      const logs = await kubectl('logs', '-f', 'job/typo', '--pod-running-timeout=30s');
      expect(logs).toEqual({ code: 0, stdout: 'one\ntwo\n', stderr: '' });
      await kube.waitFor(() => kube.get('Job', 'default', 'typo')?.status?.succeeded === 1, 20_000, 'typo done');
    });

    it('kubectl: fieldValidation=Strict, a wrong type and invalid base64 are refused with the apiserver Status', async () => {
      const typo = jobManifest('strict', 'true', { bogusField: 'x' });
      const strict = await kubectl(
        'create',
        '--raw',
        '/apis/batch/v1/namespaces/default/jobs?fieldValidation=Strict',
        '-f',
        file(typo),
      );
      expect(strict.code).not.toBe(0);
      expect(strict.stderr).toContain(
        'Error from server (BadRequest): Job in version "v1" cannot be handled as a Job: strict decoding error: unknown field "spec.template.spec.containers[0].bogusField"',
      );
      expect(kube.get('Job', 'default', 'strict')).toBeUndefined();

      const six = jobManifest('six', 'true');
      (six.spec as Record<string, unknown>).backoffLimit = 'six';
      const wrongType = await kubectl('create', '--validate=false', '-f', file(six));
      expect(wrongType.code).not.toBe(0);
      expect(wrongType.stderr).toContain('Error from server (BadRequest): error when creating');
      expect(wrongType.stderr).toContain(
        'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string into Go struct field JobSpec.spec.backoffLimit of type int32',
      );

      // A 422 still reads as kubectl expects it (the reason Invalid, the field causes in the message).
      const noImage = jobManifest('no-image', 'true', { image: '' });
      const invalid = await kubectl('create', '--validate=false', '-f', file(noImage));
      expect(invalid.stderr).toContain(
        'The Job "no-image" is invalid: spec.template.spec.containers[0].image: Required value',
      );

      const badSecret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bad64' }, data: { k: 'not base64!' } };
      const secret = await kubectl('create', '--validate=false', '-f', file(badSecret));
      expect(secret.stderr).toContain(
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3',
      );
    });

    it('kubectl: secrets, paged lists (--chunk-size), a raw watch resumed from a resourceVersion and after a 410', async () => {
      expect(await kubectl('create', 'secret', 'generic', 'creds', '--from-literal=token=s3cr3t')).toMatchObject({
        code: 0,
        stdout: 'secret/creds created\n',
      });
      const data = await kubectl('get', 'secret', 'creds', '-o', 'jsonpath={.data.token}');
      expect(Buffer.from(data.stdout, 'base64').toString()).toBe('s3cr3t');

      const first = await kubectl('create', 'configmap', 'cm-a', '--from-literal=k=a', '-o', 'json');
      const rv = JSON.parse(first.stdout).metadata.resourceVersion as string;
      for (const n of ['cm-b', 'cm-c'])
        expect((await kubectl('create', 'configmap', n, '--from-literal=k=v')).code).toBe(0);

      const paged = await kubectl('get', 'configmaps', '--chunk-size=1', '-o', 'name');
      expect(paged.stdout).toBe('configmap/cm-a\nconfigmap/cm-b\nconfigmap/cm-c\n');
      const pages = kube.requests.filter(
        (r) => r.path === '/api/v1/namespaces/default/configmaps' && r.query.limit === '1',
      );
      expect(pages.filter((r) => r.query.continue).length).toBe(2);

      // watch=1 from cm-a's revision replays what came after it, then the stream ends at timeoutSeconds.
      const watchPath = (from: string) =>
        `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${from}&timeoutSeconds=1`;
      const resumed = await kubectl('get', '--raw', watchPath(rv));
      expect(resumed.code).toBe(0);
      const events = resumed.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
      expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED cm-b', 'ADDED cm-c']);

      kube.compactHistory();
      const expired = await kubectl('get', '--raw', watchPath(rv));
      expect(JSON.parse(expired.stdout.trim())).toEqual({
        type: 'ERROR',
        object: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: expect.stringMatching(new RegExp(`^too old resource version: ${rv} \\(\\d+\\)$`)),
          reason: 'Expired',
          code: 410,
        },
      });

      // What a client does after a 410: list again, and watch from the list's revision.
      // (--raw: `get -o json` prints a List of its own making, without the server's resourceVersion.)
      const relisted = JSON.parse((await kubectl('get', '--raw', '/api/v1/namespaces/default/configmaps')).stdout);
      const fresh = relisted.metadata.resourceVersion as string;
      expect(Number(fresh)).toBeGreaterThan(Number(rv));
      expect((await kubectl('create', 'configmap', 'cm-d', '--from-literal=k=v')).code).toBe(0);
      const again = await kubectl('get', '--raw', watchPath(fresh));
      expect(
        again.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).object.metadata.name),
      ).toEqual(['cm-d']);
    });

    it('kubectl: delete --cascade=foreground waits for the pods; --cascade=background leaves them to the collector', async () => {
      for (const n of ['fg', 'bg']) {
        expect((await kubectl('create', '--validate=false', '-f', file(jobManifest(n, 'sleep 300')))).code).toBe(0);
      }
      const podsOf = (job: string) =>
        kube.list('Pod', 'default').filter((p) => p.metadata.labels?.['job-name'] === job);
      await kube.waitFor(
        () => ['fg', 'bg'].every((j) => podsOf(j)[0]?.status?.phase === 'Running'),
        30_000,
        'pods running',
      );

      const fg = await kubectl('delete', 'job', 'fg', '--cascade=foreground', '--timeout=60s');
      expect(fg).toMatchObject({ code: 0, stdout: 'job.batch "fg" deleted\n' });
      // kubectl waited for the Job itself, which foreground deletion removes only after its pods.
      expect(kube.get('Job', 'default', 'fg')).toBeUndefined();
      expect(podsOf('fg')).toEqual([]);
      const del = kube.requests.find((r) => r.method === 'DELETE' && r.path.endsWith('/jobs/fg'));
      expect(del).toBeDefined();

      const bg = await kubectl('delete', 'job', 'bg', '--cascade=background', '--wait=false');
      expect(bg).toMatchObject({ code: 0, stdout: 'job.batch "bg" deleted\n' });
      await kube.waitFor(() => podsOf('bg').length === 0, 30_000, 'bg pods collected');
    });

    it('kubectl patch: strategic merge merges containers by name; a custom resource refuses it with 415', async () => {
      const command = ['sh', '-c', 'sleep 300'];
      await kube.createPod('default', {
        metadata: { name: 'patched' },
        spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, command }] },
      });
      // A JSON merge patch would replace the list (dropping command: a forbidden pod update); strategic merge does not.
      const patch = JSON.stringify({
        metadata: { labels: { patched: 'yes' } },
        spec: { containers: [{ name: 'main', image: BUSYBOX }] },
      });
      const patched = await kubectl('patch', 'pod', 'patched', '-p', patch);
      expect(patched).toMatchObject({ code: 0, stdout: 'pod/patched patched\n' });
      expect(kube.requests.some((r) => r.method === 'PATCH' && r.path.endsWith('/pods/patched'))).toBe(true);
      const pod = kube.get('Pod', 'default', 'patched');
      expect(pod.metadata.labels).toEqual({ patched: 'yes' });
      expect(pod.spec.containers[0].command).toEqual(command);
      const merge = await kubectl('patch', 'pod', 'patched', '--type=merge', '-p', patch);
      expect(merge.stderr).toContain(
        'The Pod "patched" is invalid: spec: Forbidden: pod updates may not change fields',
      );

      const crd = {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'widgets.example.com' },
        spec: {
          group: 'example.com',
          names: { plural: 'widgets', kind: 'Widget' },
          scope: 'Namespaced',
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
            },
          ],
        },
      };
      const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } };
      const before = await kubectl('create', '--validate=false', '-f', file(widget));
      expect(before.stderr).toContain('no matches for kind "Widget" in version "example.com/v1"');
      expect(await kubectl('create', '--validate=false', '-f', file(crd))).toMatchObject({
        code: 0,
        stdout: 'customresourcedefinition.apiextensions.k8s.io/widgets.example.com created\n',
      });
      expect(await kubectl('create', '--validate=false', '-f', file(widget))).toMatchObject({
        code: 0,
        stdout: 'widget.example.com/w created\n',
      });
      const smp = await kubectl('patch', 'widget', 'w', '-p', '{"spec":{"size":2}}');
      expect(smp.code).not.toBe(0);
      expect(smp.stderr).toContain(
        'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
      );
      expect(await kubectl('patch', 'widget', 'w', '--type=merge', '-p', '{"spec":{"size":2}}')).toMatchObject({
        code: 0,
        stdout: 'widget.example.com/w patched\n',
      });
      expect(kube.get('Widget', 'default', 'w').spec).toEqual({ size: 2 });
      await kubectl('delete', 'pod', 'patched', '--grace-period=0', '--force');
    });

    it('Python client: paged lists, secrets, the refusals with status and Status body, follow=True logs', async () => {
      const listed = await py('list_configmaps', { ns: 'default', limit: 2 });
      expect(listed).toMatchObject({ names: ['cm-a', 'cm-b', 'cm-c', 'cm-d'], pages: 2 });

      expect(await py('create_secret', { ns: 'default', name: 'py-secret', stringData: { k: 'v' } })).toEqual({
        data: { k: Buffer.from('v').toString('base64') },
        type: 'Opaque',
      });
      expect(await py('read_secret', { ns: 'default', name: 'py-secret' })).toEqual({ data: { k: 'dg==' } });
      const bad64 = await py('create_secret', { ns: 'default', name: 'py-bad', data: { k: 'not base64!' } });
      expect(bad64.error).toEqual({
        status: 400,
        reason: 'Bad Request',
        body: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3',
          reason: 'BadRequest',
          code: 400,
        },
      });

      const six = jobManifest('py-six', 'true');
      (six.spec as Record<string, unknown>).backoffLimit = 'six';
      const wrongType = await py('create_job', { ns: 'default', body: six });
      expect(wrongType.error).toMatchObject({
        status: 400,
        body: {
          kind: 'Status',
          status: 'Failure',
          reason: 'BadRequest',
          code: 400,
          message:
            'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string into Go struct field JobSpec.spec.backoffLimit of type int32',
        },
      });
      const noImage = await py('create_job', { ns: 'default', body: jobManifest('py-noimage', 'true', { image: '' }) });
      expect(noImage.error).toMatchObject({
        status: 422,
        body: {
          reason: 'Invalid',
          code: 422,
          details: {
            name: 'py-noimage',
            group: 'batch',
            kind: 'Job',
            causes: [{ reason: 'FieldValueRequired', field: 'spec.template.spec.containers[0].image' }],
          },
        },
      });

      // follow=True (Python's spelling of a boolean) streams the log to its end.
      const ok = await py('create_job', {
        ns: 'default',
        body: jobManifest('py-logs', 'echo py-one; sleep 1; echo py-two'),
      });
      expect(ok).toEqual({ name: 'py-logs', backoffLimit: 0 });
      await kube.waitFor(
        () =>
          kube
            .list('Pod', 'default')
            .some((p) => p.metadata.labels?.['job-name'] === 'py-logs' && p.status?.phase !== 'Pending'),
        30_000,
        'py-logs pod started',
      );
      const pod = kube.list('Pod', 'default').find((p) => p.metadata.labels?.['job-name'] === 'py-logs');
      expect(await py('logs', { ns: 'default', name: pod.metadata.name })).toEqual({ text: 'py-one\npy-two\n' });
      expect(kube.requests.some((r) => r.path.endsWith('/log') && r.query.follow === 'True')).toBe(true);
    });

    it('Python client: watch=True resumed from a resourceVersion, a 410 raised as ApiException, deletes with both policies', async () => {
      const listed = await py('list_configmaps', { ns: 'default', limit: 10 });
      const from = listed.resourceVersion as string;
      const watching = py('watch_configmaps', { ns: 'default', rv: from, count: 2 });
      await kube.waitFor(
        () => kube.requests.some((r) => r.query.watch === 'True' && r.query.resourceVersion === from),
        20_000,
        'python watch',
      );
      expect((await kubectl('create', 'configmap', 'py-w1', '--from-literal=k=v')).code).toBe(0);
      expect((await kubectl('delete', 'configmap', 'py-w1')).code).toBe(0);
      const got = await watching;
      expect(got.events.map((e: { type: string; name: string }) => `${e.type} ${e.name}`)).toEqual([
        'ADDED py-w1',
        'DELETED py-w1',
      ]);

      kube.compactHistory();
      // The client retries a 410 once by itself, from the same revision; the second one it raises.
      const expired = await py('watch_configmaps', { ns: 'default', rv: from, count: 1 });
      expect(expired.error).toMatchObject({ status: 410 });
      expect(expired.error.reason).toMatch(new RegExp(`^Expired: too old resource version: ${from} \\(\\d+\\)$`));
      // Then, as an informer does: re-list and watch from the fresh revision.
      const relisted = await py('list_configmaps', { ns: 'default', limit: 100 });
      const resumed = py('watch_configmaps', { ns: 'default', rv: relisted.resourceVersion, count: 1 });
      await kube.waitFor(
        () =>
          kube.requests.some((r) => r.query.watch === 'True' && r.query.resourceVersion === relisted.resourceVersion),
        20_000,
        'the re-established python watch',
      );
      expect((await kubectl('create', 'configmap', 'py-w2', '--from-literal=k=v')).code).toBe(0);
      expect((await resumed).events.map((e: { type: string; name: string }) => `${e.type} ${e.name}`)).toEqual([
        'ADDED py-w2',
      ]);

      for (const n of ['py-fg', 'py-bg']) await py('create_job', { ns: 'default', body: jobManifest(n, 'sleep 300') });
      const podsOf = (job: string) =>
        kube.list('Pod', 'default').filter((p) => p.metadata.labels?.['job-name'] === job);
      await kube.waitFor(
        () => ['py-fg', 'py-bg'].every((j) => podsOf(j)[0]?.status?.phase === 'Running'),
        30_000,
        'running',
      );
      // Foreground: the answer is the Job itself, held by the foregroundDeletion finalizer until its pods are gone.
      expect(await py('delete_job', { ns: 'default', name: 'py-fg', policy: 'Foreground' })).toEqual({ kind: 'Job' });
      expect(kube.get('Job', 'default', 'py-fg')?.metadata.finalizers).toEqual(['foregroundDeletion']);
      await kube.waitFor(
        () => !kube.get('Job', 'default', 'py-fg') && podsOf('py-fg').length === 0,
        30_000,
        'py-fg gone',
      );
      // Background: the Job goes at once (a Status answer), its pods after it.
      expect(await py('delete_job', { ns: 'default', name: 'py-bg', policy: 'Background' })).toEqual({
        kind: 'Status',
      });
      expect(kube.get('Job', 'default', 'py-bg')).toBeUndefined();
      await kube.waitFor(() => podsOf('py-bg').length === 0, 30_000, 'py-bg pods gone');
    });
  },
);
