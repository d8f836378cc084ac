import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { Proc, sleep, tempDir } from '../procs.js';
import { AwsError } from './errors.js';
import type { FakeAwsServer } from './server.js';

/**
 * The "ECR" behind the fake: a real Distribution registry (Debian's docker-registry) on loopback whose htpasswd
 * holds exactly `AWS:<token>`, the credentials GetAuthorizationToken hands out. Pushing, pulling and the manifest
 * HEAD of DescribeImages all go through its real auth.
 */
export class FakeEcr {
  readonly token = `ecr-${randomBytes(16).toString('hex')}`;
  host = '';
  private proc: Proc | undefined;

  constructor(
    server: FakeAwsServer,
    private readonly account: string,
  ) {
    server.on('ecr', 'GetAuthorizationToken', () => ({
      authorizationData: [
        {
          authorizationToken: Buffer.from(`AWS:${this.token}`).toString('base64'),
          expiresAt: Math.floor(Date.now() / 1000) + 12 * 3600,
          proxyEndpoint: `http://${this.host}`,
        },
      ],
    }));
    server.on('ecr', 'DescribeImages', (i) => this.describeImages(i));
    server.on('ecr', 'DescribeRepositories', (i) => this.describeRepositories(i));
  }

  /** Repositories DescribeRepositories knows (Distribution itself creates them on the first push). */
  readonly repositories = new Set<string>();

  private describeRepositories(input: Record<string, unknown>): Record<string, unknown> {
    const names = (input.repositoryNames as string[] | undefined) ?? [...this.repositories];
    for (const n of names) {
      if (!this.repositories.has(n)) {
        throw new AwsError(
          'RepositoryNotFoundException',
          `The repository with name '${n}' does not exist in the registry with id '${this.account}'`,
        );
      }
    }
    return {
      repositories: names.map((n) => ({
        repositoryArn: `arn:aws:ecr:us-east-1:${this.account}:repository/${n}`,
        registryId: this.account,
        repositoryName: n,
        repositoryUri: `${this.host}/${n}`,
        createdAt: Math.floor(Date.now() / 1000),
        imageTagMutability: 'MUTABLE',
      })),
    };
  }

  get auth(): { username: string; password: string; serveraddress: string } {
    return { username: 'AWS', password: this.token, serveraddress: this.host };
  }

  async start(): Promise<void> {
    const dir = tempDir('liftoff-fake-ecr-');
    const port = await freePort();
    writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', 'AWS', this.token], { encoding: 'utf8' }));
    writeFileSync(
      join(dir, 'config.yml'),
      [
        'version: 0.1',
        'log: { level: error }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
        `http: { addr: 127.0.0.1:${port} }`,
        `auth: { htpasswd: { realm: fake-ecr, path: ${join(dir, 'htpasswd')} } }`,
        '',
      ].join('\n'),
    );
    this.proc = new Proc(
      spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
      if (res?.status === 401) {
        this.host = `127.0.0.1:${port}`;
        return;
      }
      await sleep(100);
    }
    this.proc.kill('SIGKILL');
    throw new Error(`registry did not start:\n${this.proc.output}`);
  }

  /** Stops the registry and untags what was pushed or pulled through it (the base images stay). */
  async stop(docker: Dockerode): Promise<void> {
    this.proc?.kill('SIGKILL');
    const images = await docker.listImages({ filters: { reference: [`${this.host}/*`, `${this.host}/*/*`] } });
    for (const img of images) {
      for (const tag of img.RepoTags ?? []) {
        if (tag.startsWith(`${this.host}/`))
          await docker
            .getImage(tag)
            .remove()
            .catch(() => {});
      }
    }
  }

  /** Pushes a local image as `<host>/<repo>:<tag>` with the ECR credentials; returns that reference. */
  async push(docker: Dockerode, source: string, repo: string, tag: string): Promise<string> {
    const ref = `${this.host}/${repo}:${tag}`;
    await docker.getImage(source).tag({ repo: `${this.host}/${repo}`, tag });
    const stream = await docker.getImage(ref).push({ authconfig: this.auth });
    await followOrThrow(docker, stream);
    return ref;
  }

  private async describeImages(input: Record<string, unknown>): Promise<Record<string, unknown>> {
    const repo = String(input.repositoryName);
    const ids = (input.imageIds as { imageTag?: string; imageDigest?: string }[] | undefined) ?? [];
    const basic = Buffer.from(`AWS:${this.token}`).toString('base64');
    const details = [];
    for (const id of ids) {
      const ref = id.imageTag ?? id.imageDigest ?? '';
      const res = await fetch(`http://${this.host}/v2/${repo}/manifests/${ref}`, {
        method: 'HEAD',
        headers: {
          authorization: `Basic ${basic}`,
          accept:
            'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
        },
      });
      if (res.status === 404) {
        throw new AwsError('ImageNotFoundException', `The image with imageId {imageTag:'${ref}'} does not exist`);
      }
      details.push({
        registryId: this.account,
        repositoryName: repo,
        imageDigest: res.headers.get('docker-content-digest') ?? '',
        ...(id.imageTag ? { imageTags: [id.imageTag] } : {}),
      });
    }
    return { imageDetails: details };
  }
}

export async function followOrThrow(docker: Dockerode, stream: NodeJS.ReadableStream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(err) : resolve()),
      (ev: { error?: string }) => {
        if (ev.error) reject(new Error(ev.error));
      },
    );
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
