import { describe, expect, it } from 'vitest';
import { stripTerminalControls } from '../src/output.js';

/** Issue 12, point 7: a job's log must not drive the terminal of whoever prints it with the CLI. */
describe('terminal controls in printed logs', () => {
  it.each([
    [
      'keeps colours',
      'a \x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m\n',
      'a \x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m\n',
    ],
    ['keeps tabs, newlines and carriage returns (progress bars)', 'a\tb\r50%\r100%\n', 'a\tb\r50%\r100%\n'],
    ['drops a window title (OSC 0)', 'x\x1b]0;pwned\x07y', 'xy'],
    ['drops a hyperlink (OSC 8) but keeps its text', '\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\', 'click'],
    ['drops a clipboard write (OSC 52)', '\x1b]52;c;ZXZpbA==\x07ok', 'ok'],
    ['drops screen clears and cursor moves', '\x1b[2J\x1b[Hhome\x1b[5A', 'home'],
    ['drops private modes (alternate screen, hidden cursor)', '\x1b[?1049h\x1b[?25lz', 'z'],
    ['drops other ESC sequences and C0/C1 controls', 'a\x1bcb\x07\x00\x08\u009bc', 'abc'],
  ])('%s', (_what, input, shown) => {
    expect(stripTerminalControls(input)).toBe(shown);
  });
});
