import { describe, expect, it } from 'vitest';
import { BuildTrail } from '../src/builders/buildTrail.js';

/** Output of the engine's classic builder, as the build stream carries it (chunks cut anywhere). */
const LOG = [
  'Step 1/3 : FROM liftoff-test/python:3\n',
  ' ---> 1a2b3c4d5e6f\n',
  'Step 2/3 : COPY requirements.txt /app/\n',
  ' ---> Using cache\n',
  ' ---> 2b3c4d5e6f7a\n',
  'Step 3/3 : RUN python3 -m pip install -r /app/requirements.txt\n',
  ' ---> Running in 0123456789ab\n',
  '/usr/bin/python3: No module',
  ' named pip\n',
  '\u001b[0mRemoving intermediate container 0123456789ab\n',
];
const ENGINE = "The command '/bin/sh -c python3 -m pip install -r /app/requirements.txt' returned a non-zero code: 1";

describe('a failed build says where and why', () => {
  it('names the step, the engine error and the last output line, with a hint for a known cause', () => {
    const t = new BuildTrail();
    for (const chunk of LOG) t.feed(chunk);
    t.feed(`${ENGINE}\n`); // followProgress writes the engine's error into the log too
    expect(t.describe(ENGINE)).toBe(
      `The image build failed at step 3/3 (RUN python3 -m pip install -r /app/requirements.txt): ${ENGINE}; ` +
        'its last output: /usr/bin/python3: No module named pip. Likely cause: the base image has no pip: use a ' +
        'base image with pip (builder.base_image) or bake the dependencies into it.',
    );
  });

  it('says what it knows when there is no step or output, and clips long lines', () => {
    expect(new BuildTrail().describe('context canceled')).toBe('The image build failed: context canceled');
    const t = new BuildTrail();
    t.feed(`Step 1/1 : RUN ${'x'.repeat(500)}\n${'y'.repeat(500)}`);
    const m = t.describe('failed');
    expect(m).toContain(`(RUN ${'x'.repeat(195)}…)`);
    expect(m).toContain(`its last output: ${'y'.repeat(199)}…`);
    expect(m.length).toBeLessThan(500);
  });
});
