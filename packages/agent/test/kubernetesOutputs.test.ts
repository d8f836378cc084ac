import { describe, expect, it } from 'vitest';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { LaunchSpec } from '@liftoff/core';
import { buildManifest, splitResourceArgs } from '../src/runners/kubernetes/manifest.js';
import { outputsHelper, wireOutputs } from '../src/runners/kubernetes/outputs.js';

type Obj = Record<string, any>;

function job(kubernetes: Obj, env: Record<string, string> = {}): Obj {
  const s = LaunchSpec.parse({
    source: { type: 'image', image: 'reg.example:5000/team/train:1' },
    entry_point: ['python', 'train.py'],
    resource_args: { kubernetes },
  });
  const { settings, fragment } = splitResourceArgs(s.resource_args.kubernetes);
  const m = buildManifest(fragment, settings, {
    runId: '0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000',
    itemId: 'item-1',
    queue: 'gpu',
    entity: 'team',
    agentId: 'agent-1',
    spec: s,
    image: 'reg.example:5000/team/train:1',
    env: { LIFTOFF_RUN_ID: '0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000', ...env },
    namespace: 'ml',
  });
  wireOutputs(m.body, {
    secret: 'liftoff-upload-0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000',
    configMap: outputsHelper().configMap,
    serverUrl: 'http://liftoff.ml.svc:8080',
    capBytes: 300 * 1024 * 1024,
  });
  return m.body;
}

/** The outputs wiring of a Kubernetes Job's pod (runners/kubernetes/outputs.ts; docs/outputs.md). */
describe('kubernetes run outputs wiring', () => {
  it('mounts a capped emptyDir and the helper read-only, and passes the token by secretKeyRef only', () => {
    const body = job({ spec: { template: { spec: { containers: [{}, { name: 'sidecar', image: 'busybox' }] } } } });
    expect(() => new Job(body as never).validate()).not.toThrow();
    const pod = body.spec.template.spec;
    expect(pod.volumes).toEqual([
      { name: 'liftoff-outputs', emptyDir: { sizeLimit: '300Mi' } },
      { name: 'liftoff-outputs-helper', configMap: { name: outputsHelper().configMap, defaultMode: 0o444 } },
    ]);
    const [main, sidecar] = pod.containers;
    expect(main.volumeMounts).toEqual([
      { name: 'liftoff-outputs', mountPath: '/mnt/liftoff/outputs' },
      { name: 'liftoff-outputs-helper', mountPath: '/mnt/liftoff/bin', readOnly: true },
    ]);
    const env = Object.fromEntries(main.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      LIFTOFF_OUTPUT_DIR: '/mnt/liftoff/outputs',
      LIFTOFF_OUTPUTS_HELPER: '/mnt/liftoff/bin/liftoff_outputs.py',
      LIFTOFF_UPLOAD_URL: 'http://liftoff.ml.svc:8080',
      LIFTOFF_UPLOAD_TOKEN: {
        secretKeyRef: { name: 'liftoff-upload-0193aaaa-bbbb-7ccc-8ddd-eeeeffff0000', key: 'token' },
      },
    });
    // The token goes to the job's container only.
    expect(sidecar.volumeMounts).toBeUndefined();
    expect(sidecar.env.map((e: Obj) => e.name)).not.toContain('LIFTOFF_UPLOAD_TOKEN');
  });

  it("the spec's env cannot set the outputs variables in the job's container: Liftoff's win", () => {
    const body = job({}, { LIFTOFF_UPLOAD_TOKEN: 'lu_forged', LIFTOFF_UPLOAD_URL: 'http://evil.example' });
    const env = body.spec.template.spec.containers[0].env as Obj[];
    expect(env.filter((e) => e.name === 'LIFTOFF_UPLOAD_TOKEN')).toEqual([
      { name: 'LIFTOFF_UPLOAD_TOKEN', valueFrom: { secretKeyRef: expect.any(Object) } },
    ]);
    expect(env.filter((e) => e.name === 'LIFTOFF_UPLOAD_URL').map((e) => e.value)).toEqual([
      'http://liftoff.ml.svc:8080',
    ]);
  });

  it('the helper ConfigMap is named by its content and holds the shipped script', () => {
    const h = outputsHelper();
    expect(h.configMap).toMatch(/^liftoff-outputs-helper-[0-9a-f]{12}$/);
    expect(h.script).toContain('def upload(directory)');
  });
});
