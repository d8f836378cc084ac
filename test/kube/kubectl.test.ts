/**
 * The test Kubernetes API server (test/helpers/kube) driven over TLS with a bearer token by the machine's `kubectl`
 * (1.32), a client Liftoff did not write: where it agrees with the server, the server speaks the wire API as kubectl
 * expects it from kube-apiserver (discovery, Warn/Ignore/Strict field validation, 400 decode errors and 422s as
 * kubectl prints them, Secrets, paged lists, watches resumed and after a 410, logs -f, both cascades, strategic merge
 * patch and its 415 for custom resources). kubectl runs with --validate=false where it would read OpenAPI documents
 * the server does not serve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, dockerAvailable } from '../helpers/docker.js';
import type { FakeKube } from '../helpers/kube/index.js';
import { clientAvailable, jobManifest, startForRealClients, type RealClients } from '../helpers/kube/realClients.js';
import { tempDir } from '../helpers/procs.js';

describe.skipIf(!dockerAvailable() || !clientAvailable('kubectl'))(
  'the test API server, driven by kubectl over TLS',
  () => {
    let kube: FakeKube;
    let c: RealClients;
    const kubectl = (...args: string[]) => c.kubectl(...args);
    const file = (obj: unknown) => c.file(obj);

    beforeAll(async () => {
      c = await startForRealClients(tempDir('liftoff-kubectl-'));
      kube = c.kube;
    });

    afterAll(async () => {
      await c?.kube.close();
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
  },
);
