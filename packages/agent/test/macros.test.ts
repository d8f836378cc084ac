import { describe, expect, it } from 'vitest';
import { LaunchSpec } from '@liftoff/core';
import { fillResourceMacros } from '../src/macros.js';

describe('agent-side resource_args macros', () => {
  it('fills run, entity, project, name, image, author and agent env macros; leaves unknown ones', () => {
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
          nested: { region: '${AWS_REGION}', keep: '${NOT_SET}', plain: 3 },
        },
      },
    });
    const out = fillResourceMacros(
      spec,
      { run_id: 'r1', entity_name: 'team', image_uri: 'img:1' },
      { AWS_REGION: 'eu' },
    );
    expect(out.resource_args).toEqual({
      'local-container': {
        labels: ['run=r1', 'who=alice', 'team/proj/my-run'],
        image: 'img:1',
        nested: { region: 'eu', keep: '${NOT_SET}', plain: 3 },
      },
    });
    expect(spec.resource_args['local-container']?.image).toBe('${image_uri}'); // the input is not changed
  });
});
