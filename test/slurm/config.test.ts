import { describe, expect, it } from 'vitest';
import { ConfigInvalidError, parseAgentConfigYaml } from '@liftoff/core';

describe('the agent config key slurm', () => {
  it('accepts local and ssh transports and refuses unknown keys, relative roots and ssh without a host', () => {
    expect(parseAgentConfigYaml('slurm: {workdir-root: /shared/l}\n', 'c').slurm).toEqual({
      transport: 'local',
      'workdir-root': '/shared/l',
    });
    expect(
      parseAgentConfigYaml('slurm: {transport: ssh, host: login1, user: ml, port: 22, workdir-root: /s}\n', 'c').slurm,
    ).toMatchObject({ transport: 'ssh', host: 'login1', user: 'ml', port: 22 });
    for (const bad of [
      'slurm: {workdir-root: relative}\n',
      'slurm: {transport: ssh, workdir-root: /s}\n',
      'slurm: {workdir-root: /s, wrap: x}\n',
      'slurm: {transport: ssh, host: "-oProxyCommand=x", workdir-root: /s}\n',
      'slurm: {transport: ssh, host: "-oProxyJumpx", workdir-root: /s}\n',
      'slurm: {transport: ssh, host: h, user: "-l", workdir-root: /s}\n',
    ]) {
      expect(() => parseAgentConfigYaml(bad, 'c'), bad).toThrow(ConfigInvalidError);
    }
  });
});
