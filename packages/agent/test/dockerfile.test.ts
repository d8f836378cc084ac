import { describe, expect, it } from 'vitest';
import { generateDockerfile } from '@liftoff/agent';

describe('generated Dockerfiles', () => {
  it('refuse a base image that is not an image reference, even when it got past the server', () => {
    for (const bad of ['python:3\nRUN touch /pwned', 'python:3 AS x', '--platform=x python', 'Python:3', '']) {
      expect(() => generateDockerfile(bad, undefined)).toThrow(/is not an image reference/);
    }
  });

  it('put the code in /app owned by root and leave the user to the container (no chown)', () => {
    const text = generateDockerfile('127.0.0.1:5000/team/python:3.12@sha256:' + '0'.repeat(64), 'requirements.txt');
    expect(text.split('\n')[0]).toBe(`FROM 127.0.0.1:5000/team/python:3.12@sha256:${'0'.repeat(64)}`);
    expect(text).toContain('COPY . /app\n');
    expect(text).not.toContain('--chown');
    expect(text).toContain('RUN python3 -m pip install -r requirements.txt');
  });
});
