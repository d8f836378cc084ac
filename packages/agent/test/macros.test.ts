import { describe, expect, it } from 'vitest';
import { LaunchSpec } from '@liftoff/core';
import { assertMacrosAllowed, fillResourceMacros } from '../src/macros.js';

describe('agent-side resource_args macros', () => {
  it('fills run, entity, project, name, image, author and the macro-env variables of the agent', () => {
    const spec = LaunchSpec.parse({
      source: { type: 'git', url: 'https://example.com/r.git' },
      entry_point: ['true'],
      name: 'my-run',
      project: 'proj',
      author: 'alice',
      resource_args: {
        'local-container': {
          labels: ['run=${run_id}', 'who=${author}', '${entity_name}/${project_name}/${run_name}'],
          image: '${image_uri}',
          nested: { region: '${AWS_REGION}', keep: '${NOT_LISTED}', plain: 3 },
        },
      },
    });
    const out = fillResourceMacros(
      spec,
      { run_id: 'r1', entity_name: 'team', image_uri: 'img:1' },
      { AWS_REGION: 'eu', NOT_LISTED: 'secret' },
      ['AWS_REGION'],
    );
    expect(out.resource_args).toEqual({
      'local-container': {
        labels: ['run=r1', 'who=alice', 'team/proj/my-run'],
        image: 'img:1',
        nested: { region: 'eu', keep: '${NOT_LISTED}', plain: 3 },
      },
    });
    expect(spec.resource_args['local-container']?.image).toBe('${image_uri}'); // the input is not changed
  });

  it('refuses a variable outside macro-env, and one macro-env allows but the agent lacks, naming it', () => {
    const spec = LaunchSpec.parse({
      source: { type: 'git', url: 'https://example.com/r.git' },
      entry_point: ['true'],
      resource_args: { 'local-container': { env: { A: '${run_id}', B: '${AWS_SECRET_ACCESS_KEY}' } } },
    });
    expect(() => assertMacrosAllowed(spec, [], { AWS_SECRET_ACCESS_KEY: 's' })).toThrow(
      /\$\{AWS_SECRET_ACCESS_KEY\}.*add AWS_SECRET_ACCESS_KEY to macro-env/,
    );
    expect(() => assertMacrosAllowed(spec, ['AWS_SECRET_ACCESS_KEY'], {})).toThrow(/does not set/);
    expect(() => assertMacrosAllowed(spec, ['AWS_SECRET_ACCESS_KEY'], { AWS_SECRET_ACCESS_KEY: 's' })).not.toThrow();
  });
});
