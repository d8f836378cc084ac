import { describe, expect, it } from 'vitest';
import { parseWarnings } from '../src/runners/kubernetes/api.js';

describe('parseWarnings (the API server Warning headers a create answers with)', () => {
  it('reads one header value, unescaping the quoted text', () => {
    expect(parseWarnings('299 - "unknown field \\"spec.template.spec.containers[0].bogusField\\""')).toEqual([
      'unknown field "spec.template.spec.containers[0].bogusField"',
    ]);
  });

  it('splits several headers joined by ", " (fetch) even when their texts hold commas, and skips a date', () => {
    const joined =
      '299 - "unknown field \\"spec.a\\"", 299 - "metadata.name: a, b and c", 299 kube-apiserver "x" "Wed, 02 Dec 2026 15:00:00 GMT"';
    expect(parseWarnings(joined)).toEqual(['unknown field "spec.a"', 'metadata.name: a, b and c', 'x']);
  });

  it('answers nothing for no header or one it cannot read', () => {
    expect(parseWarnings(undefined)).toEqual([]);
    expect(parseWarnings('')).toEqual([]);
    expect(parseWarnings('garbage')).toEqual([]);
  });
});
