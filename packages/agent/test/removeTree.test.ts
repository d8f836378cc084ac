import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTree } from '../src/removeTree.js';
import { cleanupAll, tempDir } from '../../../test/helpers/procs.js';

/** Issue 20: run state and work dirs are removed with fewer calls than fs.rm makes, and just as safely. */
describe('removeTree', () => {
  afterAll(cleanupAll);

  it('removes files, links (never what they point at) and nested dirs, and the dir itself', async () => {
    const root = tempDir('liftoff-rmtree-');
    const outside = join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep.txt'), 'kept');
    const dir = join(root, 'run');
    mkdirSync(join(dir, 'deep', 'er'), { recursive: true });
    writeFileSync(join(dir, 'status.json'), '{}');
    writeFileSync(join(dir, 'deep', 'er', 'f'), 'x');
    symlinkSync(outside, join(dir, 'to-dir'));
    symlinkSync(join(outside, 'keep.txt'), join(dir, 'deep', 'to-file'));
    symlinkSync('/nonexistent', join(dir, 'dangling'));
    await removeTree(dir);
    expect(existsSync(dir)).toBe(false);
    expect(readFileSync(join(outside, 'keep.txt'), 'utf8')).toBe('kept');
  });

  it('is a no-op for a dir that is not there, and removes a single file given in its place', async () => {
    const root = tempDir('liftoff-rmtree-');
    await expect(removeTree(join(root, 'missing'))).resolves.toBeUndefined();
    writeFileSync(join(root, 'file'), 'x');
    await removeTree(join(root, 'file'));
    expect(existsSync(join(root, 'file'))).toBe(false);
  });
  it('removes a flat dir of a few entries and one of many alike, links unlinked and never followed', async () => {
    for (const count of [3, 32, 33, 200]) {
      const root = tempDir('liftoff-rmtree-');
      const outside = join(root, 'outside');
      mkdirSync(outside);
      writeFileSync(join(outside, 'keep.txt'), 'kept');
      const dir = join(root, 'run');
      mkdirSync(dir);
      for (let i = 0; i < count - 2; i++) writeFileSync(join(dir, `f${i}`), 'x');
      symlinkSync(outside, join(dir, 'to-dir'));
      symlinkSync(join(outside, 'keep.txt'), join(dir, 'to-file'));
      await removeTree(dir);
      expect(existsSync(dir), `${count} entries`).toBe(false);
      expect(readFileSync(join(outside, 'keep.txt'), 'utf8')).toBe('kept');
    }
  });
});
