import { describe, expect, it } from 'vitest';
import { localContainerArgsProblems, parseLocalContainerArgs, queueResourceArgs } from '../src/index.js';

/** Issue 18: the stored shape of a queue config text (CLI and UI alike), and every local-container problem at once. */
describe('queueResourceArgs', () => {
  it('nests a section under its resource type once, whether or not the text is keyed by it', () => {
    const section = { cpus: 2, labels: { team: 'ml' } };
    expect(queueResourceArgs('local-container', section)).toEqual({ 'local-container': section });
    expect(queueResourceArgs('local-container', { 'local-container': section })).toEqual({
      'local-container': section,
    });
    expect(queueResourceArgs('local-container', {})).toEqual({});
    expect(queueResourceArgs('local-container', undefined)).toEqual({});
  });
  it('keeps a section keyed by another resource type as it is, for the server to refuse by name', () => {
    expect(queueResourceArgs('local-process', { kubernetes: { namespace: 'ml' } })).toEqual({
      kubernetes: { namespace: 'ml' },
    });
  });
  it('nests a text with one key that is no resource type, or a scalar under the type', () => {
    expect(queueResourceArgs('local-process', { tier: 'a' })).toEqual({ 'local-process': { tier: 'a' } });
    expect(queueResourceArgs('local-process', { 'local-process': 3 })).toEqual({
      'local-process': { 'local-process': 3 },
    });
  });
});

describe('localContainerArgsProblems', () => {
  it('lists every refused key, unknown key and bad value, while parse still names the first', () => {
    const args = { privileged: true, volumes: ['/:/host'], cpus: -1, colour: 'red', builder: { base: 'x' } };
    const fields = localContainerArgsProblems(args).map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'resource_args.local-container.privileged',
        'resource_args.local-container.volumes',
        'resource_args.local-container.cpus',
        'resource_args.local-container.colour',
        'resource_args.local-container.builder.base',
      ]),
    );
    expect(fields).toHaveLength(5);
    expect(() => parseLocalContainerArgs(args)).toThrow(
      'resource_args.local-container.privileged is refused: privileged containers can take over the host.',
    );
    expect(localContainerArgsProblems({ cpus: 2, memory: '4g' })).toEqual([]);
  });
});
