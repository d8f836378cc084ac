import { existsSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type Dockerode from 'dockerode';
import { NotSupportedError } from '@liftoff/core';

/**
 * Loads dockerode without the two parts of it the agent never reaches, unless `ssh` (an ssh:// DOCKER_HOST).
 *
 * docker-modem requires its `lib/ssh.js`, and with it ssh2, at import; ssh2's WebAssembly (poly1305) then allocates
 * ~17 MB. It is used only when the modem's protocol is `ssh`. dockerode requires its `lib/session.js`, and with it
 * gRPC and protobufjs, at import; it is used only by `buildImage` with `version: "2"` (BuildKit sessions), which the
 * docker builder does not ask for. Neither library has an option to skip these imports, and node_modules is not ours
 * to patch, so before dockerode loads, the CommonJS cache (`require.cache`, a public Node API) is given stand-ins for
 * exactly those two files: each throws a NotSupportedError if ever called. Safe when the layout changes: a file
 * that is not where expected gets no stand-in, and the real module loads (costing memory, not correctness).
 */
export function loadDockerode(ssh: boolean): typeof Dockerode {
  const require = createRequire(import.meta.url);
  const dockerodeMain = require.resolve('dockerode');
  const standIns: Array<[string, string]> = [
    [join(dirname(dockerodeMain), 'session.js'), 'BuildKit sessions (buildImage version "2")'],
  ];
  if (!ssh) {
    const modemMain = createRequire(dockerodeMain).resolve('docker-modem');
    standIns.push([join(dirname(modemMain), 'ssh.js'), 'Docker over ssh:// (DOCKER_HOST)']);
  }
  for (const [file, what] of standIns) {
    if (!existsSync(file) || require.cache[file]) continue;
    const m = new Module(file);
    m.filename = file;
    m.loaded = true;
    m.exports = () => {
      throw new NotSupportedError(`${what} is not available in the Liftoff agent.`);
    };
    require.cache[file] = m;
  }
  return require('dockerode') as typeof Dockerode;
}
