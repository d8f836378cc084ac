import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/** `liftoff launch --spec`: a W&B launch spec pushed as it is, run with the environment W&B's agent sets. */
describe('launch --spec and the W&B environment', () => {
  let server: TestServer;
  let dir: string;
  let code: string;
  beforeAll(async () => {
    server = await startServer();
    await startAgent(server);
    dir = tempDir('liftoff-wbspec-');
    code = join(dir, 'code');
    mkdirSync(code);
    // Prints the WANDB_* variables it got, and its arguments, as one JSON line.
    writeFileSync(
      join(code, 'env.py'),
      'import json, os, sys\n' +
        'print("ENV " + json.dumps({"env": {k: v for k, v in os.environ.items() if k.startswith("WANDB_")}, "argv": sys.argv[1:]}))\n',
    );
  });
  afterAll(cleanupAll);

  function envOf(output: string): { env: Record<string, string>; argv: string[] } {
    const line = output.split('\n').find((l) => l.startsWith('ENV '));
    if (!line) throw new Error(`no ENV line in:\n${output}`);
    return JSON.parse(line.slice(4)) as { env: Record<string, string>; argv: string[] };
  }

  it('runs a W&B spec with every W&B variable set', async () => {
    const spec = join(dir, 'spec.yaml');
    writeFileSync(
      spec,
      [
        `uri: ${code}`,
        'entry_point: [python3, env.py]',
        'entity: default',
        'project: MyProj',
        'name: first',
        'overrides:',
        '  run_config: {lr: 0.1, layers: [1, 2]}',
        '  args: ["--fast"]',
        '',
      ].join('\n'),
    );
    const r = await cli(['launch', '--spec', spec, '--set', 'epochs=3', '--wait'], server.env);
    expect(r.code, r.output).toBe(0);
    const { env, argv } = envOf(r.output);
    expect(argv).toEqual(['--fast']);
    const runId = (r.output.match(/run (\S+) started/) ?? [])[1] as string;
    const itemId = (r.output.match(/queued item (\S+) on/) ?? [])[1] as string;
    expect(JSON.parse(env.WANDB_CONFIG as string)).toEqual({ lr: 0.1, layers: [1, 2], epochs: 3 });
    expect(env).toMatchObject({
      WANDB_LAUNCH: 'True',
      WANDB_RUN_ID: runId,
      WANDB_NAME: 'first',
      WANDB_PROJECT: 'myproj',
      WANDB_ENTITY: 'default',
      WANDB_LAUNCH_QUEUE_NAME: 'default',
      WANDB_LAUNCH_QUEUE_ENTITY: 'default',
      WANDB_LAUNCH_TRACE_ID: itemId,
    });
    expect(env.WANDB_USERNAME).toBeTruthy();
    // Liftoff is no W&B server: neither its URL nor a key is handed to the job.
    expect(env.WANDB_API_KEY).toBeUndefined();
    expect(env.WANDB_BASE_URL).toBeUndefined();
  });

  it('sets no W&B variable without the opt-in, and all of them with --wandb-env', async () => {
    const plain = await cli(['launch', '--code', code, '-E', 'python3 env.py', '-n', 'x', '--wait'], server.env);
    expect(plain.code, plain.output).toBe(0);
    expect(envOf(plain.output).env).toEqual({});
    const opted = await cli(
      ['launch', '--code', code, '-E', 'python3 env.py', '--set', 'a=1', '--wandb-env', '--wait'],
      server.env,
    );
    expect(opted.code, opted.output).toBe(0);
    expect(JSON.parse(envOf(opted.output).env.WANDB_CONFIG as string)).toEqual({ a: 1 });
  });

  it('refuses a spec key Liftoff does not support, by name, and -c with a spec', async () => {
    const spec = join(dir, 'bad.json');
    writeFileSync(spec, JSON.stringify({ uri: code, entry_point: ['python3', 'env.py'], _wandb_api_key: 'k' }));
    const r = await cli(['launch', '--spec', spec], server.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain('"_wandb_api_key" is not supported');
    const asConfig = await cli(['launch', '--code', code, '-E', 'python3 env.py', '-c', spec], server.env);
    expect(asConfig.code).toBe(2);
    expect(asConfig.output).toContain(`Pass the spec with --spec ${spec}`);
    expect((await server.client.getQueue('default', 'default')).pending).toBe(0);
  });
});
