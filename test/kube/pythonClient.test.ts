/**
 * The test Kubernetes API server driven over TLS by the official Python client (Debian's python3-kubernetes, through
 * test/kube/pyclient.py), a client Liftoff did not write: Go-style booleans (`watch=True`, `follow=True`), paged
 * lists, Secrets, refusals with their status code and Status body, watches resumed from a resourceVersion and after
 * a 410, and deletes with both propagation policies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../helpers/docker.js';
import type { FakeKube } from '../helpers/kube/index.js';
import { clientAvailable, jobManifest, startForRealClients, type RealClients } from '../helpers/kube/realClients.js';
import { tempDir } from '../helpers/procs.js';

describe.skipIf(!dockerAvailable() || !clientAvailable('python'))(
  'the test API server, driven by the official Python client over TLS',
  () => {
    let kube: FakeKube;
    let c: RealClients;
    const py = (op: string, args?: Record<string, unknown>) => c.py(op, args);

    beforeAll(async () => {
      c = await startForRealClients(tempDir('liftoff-python-'));
      kube = c.kube;
      for (const name of ['cm-a', 'cm-b', 'cm-c', 'cm-d']) await py('create_configmap', { ns: 'default', name });
    });

    afterAll(async () => {
      await c?.kube.close();
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
      await py('create_configmap', { ns: 'default', name: 'py-w1' });
      await py('delete_configmap', { ns: 'default', name: 'py-w1' });
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
      await py('create_configmap', { ns: 'default', name: 'py-w2' });
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
