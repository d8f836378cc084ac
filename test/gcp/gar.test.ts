import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GcpEnvironmentError } from '@liftoff/core';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import type { GcpClientSettings } from '../../packages/agent/src/environments/types.js';
import { registryFor } from '../../packages/agent/src/registries/index.js';
import { createGarRegistry, parseGarUri } from '../../packages/agent/src/registries/gar.js';
import { BUSYBOX, docker, dockerAvailable, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { cleanupAll, onCleanup } from '../helpers/procs.js';
import { PROJECT, settingsFrom } from './env.js';

const TOKEN = 'ya29.liftoff-gar-test-token';
const noDocker = {} as Dockerode;

/**
 * The gcr registry (Artifact Registry, issue 14): its login is `oauth2accesstoken` + the auth client's token (here
 * from the fake metadata server), given to a real Distribution registry whose only htpasswd user is exactly that, and
 * a real docker push through the engine; existence is the OCI manifest HEAD.
 */
describe('the gcr registry', () => {
  let md: FakeMetadata;
  let gcp: GcpClientSettings;
  beforeAll(async () => {
    md = await startFakeMetadata({ token: TOKEN });
    gcp = await settingsFrom(md.env);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('with repository + image-name: <region>-docker.pkg.dev/<project>/<repository>/<image>, logging in as oauth2accesstoken', async () => {
    const credentials = new RegistryCredentials([]);
    const registry = await createGarRegistry(
      { type: 'gcr', repository: 'jobs', 'image-name': 'trainer' },
      { docker: noDocker, credentials, gcp },
    );
    expect(registry.repository).toBe(`us-central1-docker.pkg.dev/${PROJECT}/jobs/trainer`);
    expect(await credentials.authFor(`us-central1-docker.pkg.dev/${PROJECT}/jobs/trainer:abc`)).toEqual({
      username: 'oauth2accesstoken',
      password: TOKEN,
      serveraddress: 'us-central1-docker.pkg.dev',
    });
  });

  it('LIFTOFF_GAR_DOCKER_HOST serves every pkg.dev host (and only those) with the same token login', async () => {
    const credentials = new RegistryCredentials([]);
    const mirrored = { ...gcp, dockerHost: '127.0.0.1:5999' };
    const registry = await createGarRegistry(
      { type: 'gcr', repository: 'jobs', 'image-name': 'trainer' },
      { docker: noDocker, credentials, gcp: mirrored },
    );
    expect(registry.repository).toBe(`127.0.0.1:5999/${PROJECT}/jobs/trainer`);
    expect((await credentials.get('127.0.0.1:5999'))?.password).toBe(TOKEN);
    const byUri = await createGarRegistry(
      { type: 'gcr', uri: `127.0.0.1:6000/${PROJECT}/jobs/trainer` },
      { docker: noDocker, credentials, gcp: mirrored },
    );
    expect(byUri.repository).toBe(`127.0.0.1:6000/${PROJECT}/jobs/trainer`);
  });

  it('in a gcp environment a builder.destination on a -docker.pkg.dev host makes the gcr registry; other hosts get no token', async () => {
    const credentials = new RegistryCredentials([]);
    const destination = `europe-west4-docker.pkg.dev/${PROJECT}/shared/img`;
    const registry = await registryFor(null, { docker: noDocker, credentials, destination, gcp });
    expect(registry.repository).toBe(destination);
    expect((await credentials.get('europe-west4-docker.pkg.dev'))?.username).toBe('oauth2accesstoken');
    const plain = new RegistryCredentials([]);
    await registryFor(null, { docker: noDocker, credentials: plain, destination: 'registry.example.com/x/y', gcp });
    expect(await plain.get('registry.example.com')).toBeUndefined();
    await expect(
      createGarRegistry({ type: 'gcr', uri: 'evil.example.com/p-roject/r/i' }, { docker: noDocker, credentials, gcp }),
    ).rejects.toThrow('is not an Artifact Registry image');
  });

  it('parses Artifact Registry URIs and refuses malformed names', async () => {
    expect(parseGarUri(`us-docker.pkg.dev/${PROJECT}/repo/team/img`)).toEqual({
      host: 'us-docker.pkg.dev',
      project: PROJECT,
      repository: 'repo',
      image: 'team/img',
    });
    expect(parseGarUri(`us-docker.pkg.dev/${PROJECT}/repo`, 'img')?.image).toBe('img');
    expect(parseGarUri('127.0.0.1:5000/my-project/repo/img')?.host).toBe('127.0.0.1:5000');
    expect(parseGarUri(`us-docker.pkg.dev/${PROJECT}/Repo/img`)).toBeUndefined();
    expect(parseGarUri(`us-docker.pkg.dev/${PROJECT}/repo`)).toBeUndefined();
    expect(parseGarUri(`pkg.dev.evil.com/${PROJECT}/repo/img`)).toBeUndefined();
    await expect(
      createGarRegistry(
        { type: 'gcr', repository: 'jobs', 'image-name': 'Bad Name' },
        { docker: noDocker, credentials: new RegistryCredentials([]), gcp },
      ),
    ).rejects.toBeInstanceOf(GcpEnvironmentError);
  });

  describe.skipIf(!dockerAvailable())('against a real registry', () => {
    let registry: TestRegistry;
    beforeAll(async () => {
      registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
    }, 60_000);

    it('pushes through the engine with the token login and finds the tag by the OCI manifest HEAD', async () => {
      const credentials = new RegistryCredentials([]);
      const engine = new Dockerode();
      const gar = await createGarRegistry(
        { type: 'gcr', uri: `${registry.host}/${PROJECT}/jobs/trainer` },
        { docker: engine, credentials, gcp },
      );
      const image = `${registry.host}/${PROJECT}/jobs/trainer:t1`;
      docker('tag', BUSYBOX, image);
      onCleanup(() => void docker('rmi', image));
      const fetchesBefore = md.tokenFetches();
      await gar.publish(image, () => undefined);
      expect(await gar.imageExists(image)).toBe(true);
      expect(await gar.imageExists(`${registry.host}/${PROJECT}/jobs/trainer:t2`)).toBe(false);
      // The registry holds it, under the one login the token gives.
      const auth = `Basic ${Buffer.from(`oauth2accesstoken:${TOKEN}`).toString('base64')}`;
      const tags = (await (
        await fetch(`http://${registry.host}/v2/${PROJECT}/jobs/trainer/tags/list`, {
          headers: { authorization: auth },
        })
      ).json()) as { tags: string[] };
      expect(tags.tags).toEqual(['t1']);
      // Cached by the auth client: the push and both HEADs needed no new fetch.
      expect(md.tokenFetches()).toBe(fetchesBefore);
    }, 120_000);

    it('a registry refusing the token names the role to grant', async () => {
      const other = await startRegistry({ username: 'oauth2accesstoken', password: 'another-token' });
      const gar = await createGarRegistry(
        { type: 'gcr', uri: `${other.host}/${PROJECT}/jobs/trainer` },
        { docker: noDocker, credentials: new RegistryCredentials([]), gcp },
      );
      await expect(gar.imageExists(`${other.host}/${PROJECT}/jobs/trainer:t1`)).rejects.toThrow(
        `Registry ${other.host} refused the credentials (HTTP 401); the agent's service account needs roles/artifactregistry.writer on repository jobs of project ${PROJECT}.`,
      );
    }, 60_000);
  });
});
