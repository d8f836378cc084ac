import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACR_USERNAME,
  acrRefreshToken,
  registryAvailable,
  startFakeAcr,
  type FakeAcr,
} from '../helpers/azureFake/acr.js';
import { ACCOUNT, adminClient, azuriteAvailable, startAzurite, type Azurite } from '../helpers/azureFake/azurite.js';
import {
  AGENT_NO_IMDS,
  TENANT,
  azureAgentEnv,
  startFakeIdentity,
  type FakeIdentity,
} from '../helpers/azureFake/identity.js';
import { cleanupDockerAfter, dockerAvailable, PYTHON } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

const CTX = `https://${ACCOUNT}.blob.core.windows.net/liftoff-ctx`;

/**
 * An azure agent config (environment azure + registry acr, docker builder, a Blob build-context store) end to end
 * (issue 15): real `liftoff` server and agent processes; the agent's identity is a managed identity from the fake
 * App Service endpoint on loopback; the build-context container is in Azurite over HTTPS (the test CA given to the
 * agent as NODE_EXTRA_CA_CERTS); "ACR" is a real Distribution registry in token-auth mode behind the fake ACR token
 * service. Its host is given by `registry.uri` (a loopback host is the one non-azurecr.io host acr accepts), as no
 * test may reach *.azurecr.io.
 */
const CONFIG = (registryHost: string, extra = '') => `entity: default
max_jobs: -1
queues:
- acr-box
environment:
  type: azure
registry:
  type: acr
  uri: ${registryHost}/team/trainer
builder:
  type: docker
${extra}`;

const PRINT_ENV = 'import os\nprint("ENVKEYS", sorted(os.environ))\nprint("ran the ACR image")\n';

describe.skipIf(!dockerAvailable() || !azuriteAvailable() || !registryAvailable())(
  'an agent with the azure environment and an acr registry',
  () => {
    let server: TestServer;
    let id: FakeIdentity;
    let acr: FakeAcr;
    let azurite: Azurite;
    let agentEnv: Record<string, string>;
    const agents: string[] = [];

    beforeAll(async () => {
      id = await startFakeIdentity();
      [acr, azurite] = await Promise.all([
        startFakeAcr({ acceptAad: (t) => id.issued(t, 'https://containerregistry.azure.net') }),
        startAzurite(),
      ]);
      await (await adminClient(azurite)).createContainer('liftoff-ctx');
      // Everything Azure-ish the agent has; none of it may reach a job.
      agentEnv = azureAgentEnv(id, azurite);
      server = await startServer();
      await server.client.createQueue('default', {
        name: 'acr-box',
        resource: 'local-container',
        resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
      });
      cleanupDockerAfter(() => agents);
    }, 120_000);
    afterAll(cleanupAll);

    it('builds a code job, pushes it to ACR with the exchanged refresh token, runs it without the agent Azure variables', async () => {
      const config = CONFIG(acr.host, `  build-context-store: ${CTX}/ctx/\n`);
      const agent = await startAgent(server, {
        queues: ['acr-box'],
        name: 'acr-agent',
        config: agentConfig(tempDir(), config),
        env: agentEnv,
      });
      agents.push('acr-agent');
      expect(agent.proc.output).toMatch(new RegExp(`azure: tenant ${TENANT}, principal [0-9a-f-]+`));
      expect(agent.proc.output).toContain(`azure: build-context store ${CTX}/ctx/ is reachable`);
      expect(acr.exchanges()).toBe(1); // the login made at start
      const dir = codeDir({ 'main.py': PRINT_ENV });
      const first = await cli(
        ['launch', '-q', 'acr-box', '--code', dir, '-E', 'python3 main.py', '--wait'],
        server.env,
      );
      expect(first.code, first.output).toBe(0);
      const image = /building (\S+) from/.exec(first.output)?.[1] as string;
      expect(image.startsWith(`${acr.host}/team/trainer:`)).toBe(true);
      expect(first.output).toContain('ran the ACR image');
      const keys = /ENVKEYS \[(.*)\]/.exec(first.output)?.[1] ?? '';
      expect(keys).toContain("'LIFTOFF_RUN_ID'");
      for (const prefix of ["'AZURE_", "'IDENTITY_", "'MSI_", "'LIFTOFF_AZURE", "'NODE_EXTRA_CA"]) {
        expect(keys).not.toContain(prefix);
      }
      // The push landed in the registry: its tag list, asked with a token from the fake's token service.
      const refresh = await acrRefreshToken(acr, id);
      const token = await fetch(
        `http://${acr.host}/oauth2/token?service=${acr.host}&scope=repository:team/trainer:pull`,
        {
          headers: {
            authorization: `Basic ${Buffer.from(`${ACR_USERNAME}:${refresh}`).toString('base64')}`,
          },
        },
      ).then((r) => r.json() as Promise<{ access_token: string }>);
      const tags = (await (
        await fetch(`http://${acr.host}/v2/team/trainer/tags/list`, {
          headers: { authorization: `Bearer ${token.access_token}` },
        })
      ).json()) as { tags: string[] };
      expect(tags.tags).toContain(image.split(':').at(-1));
      // The same inputs again: the OCI manifest HEAD (with the refresh-token login) finds the image and skips the build.
      const second = await cli(
        ['launch', '-q', 'acr-box', '--code', dir, '-E', 'python3 main.py', '--wait'],
        server.env,
      );
      expect(second.code, second.output).toBe(0);
      expect(second.output).toContain(`image ${image} already exists`);
      await agent.stop();
    }, 240_000);

    it('without Azure credentials the agent stops at start (exit 2), saying how to provide them', async () => {
      const r = await cli(
        [
          'launch-agent',
          '--name',
          'no-creds',
          '--data-dir',
          join(tempDir(), 'a'),
          '-c',
          agentConfig(tempDir(), CONFIG(acr.host)),
        ],
        { ...server.env, ...AGENT_NO_IMDS },
      );
      expect(r.code).toBe(2);
      expect(r.output).toMatch(
        /^liftoff: error: The agent config has an azure environment, but no Azure credentials were found \(tried: managed identity\)\. Provide them/m,
      );
      expect(r.output).not.toContain('    at ');
    }, 60_000);

    it('a build-context container that does not exist stops the agent at start (exit 2), naming it', async () => {
      const config = CONFIG(
        acr.host,
        `  build-context-store: https://${ACCOUNT}.blob.core.windows.net/missing-ctx/ctx/\n`,
      );
      const r = await cli(
        [
          'launch-agent',
          '--name',
          'no-container',
          '--data-dir',
          join(tempDir(), 'a'),
          '-c',
          agentConfig(tempDir(), config),
        ],
        { ...server.env, ...agentEnv },
      );
      expect(r.code).toBe(2);
      expect(r.output).toContain(
        `liftoff: error: builder.build-context-store https://${ACCOUNT}.blob.core.windows.net/missing-ctx/ctx/: container "missing-ctx" does not exist in storage account ${ACCOUNT}; create it (az storage container create`,
      );
    }, 60_000);
  },
);
