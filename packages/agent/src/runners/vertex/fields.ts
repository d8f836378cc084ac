/**
 * The fields of the Vertex AI v1 messages a queue's `resource_args.vertex.spec.worker_pool_specs` may hold, in both
 * proto3 JSON spellings (the original snake_case name and lowerCamelCase; Vertex accepts either). Copied from the
 * `google.cloud.aiplatform.v1` types in `@google-cloud/aiplatform@6.11.0`'s protos.json: the runner carries no
 * protos at run time (the SDK is 115 MB), and test/vertexFake/vertexRunner.test.ts fails when these lists drift
 * from that file. An unknown key is refused by name before any call, instead of Vertex's 400 after a build.
 */
export const MESSAGE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  WorkerPoolSpec: [
    'containerSpec',
    'pythonPackageSpec',
    'machineSpec',
    'replicaCount',
    'nfsMounts',
    'lustreMounts',
    'diskSpec',
  ],
  ContainerSpec: ['imageUri', 'command', 'args', 'env'],
  MachineSpec: [
    'machineType',
    'acceleratorType',
    'acceleratorCount',
    'gpuPartitionSize',
    'tpuTopology',
    'reservationAffinity',
  ],
  DiskSpec: ['bootDiskType', 'bootDiskSizeGb'],
  EnvVar: ['name', 'value'],
};

/** Which message a field of a checked message holds (only those the runner looks into). */
export const NESTED: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  WorkerPoolSpec: { containerSpec: 'ContainerSpec', machineSpec: 'MachineSpec', diskSpec: 'DiskSpec' },
};

export const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
export const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
