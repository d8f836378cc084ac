/**
 * What a failed image build was doing: the engine's classic builder prints `Step N/M : INSTRUCTION` before each
 * step, then the step's output. The trail keeps the last step and the last lines of output after it, so a failed
 * build's run message names the step and its last error line instead of only "build failed" (the cause was often
 * deep in a long build log). Known causes get a hint saying what to change.
 */
const STEP = /^Step (\d+\/\d+) : (.*)$/;
/** Engine bookkeeping lines between a step's header and its output. */
const NOISE = /^( ---> |Removing intermediate container |Successfully (built|tagged) )/;
const KEPT_LINES = 5;
/** Colour and cursor sequences the engine and build tools print (the engine resets colours before its own lines). */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
/** Longest part of an instruction or a line shown in the message. */
const MAX_SHOWN = 200;

const HINTS: Array<[RegExp, string]> = [
  [
    /No module named pip|pip3?: (not found|command not found)/,
    'the base image has no pip: use a base image with pip (builder.base_image) or bake the dependencies into it',
  ],
  [
    /(python3?|node|npm): (not found|command not found)|exec: "[^"]+": executable file not found/,
    'the base image lacks a program the build runs: pick a base image that has it',
  ],
  [
    /Could not find a version that satisfies|No matching distribution found/,
    'pip could not find a package: check its name and version, and that the build can reach the package index',
  ],
  [
    /Temporary failure in name resolution|Could not resolve host|Network is unreachable/,
    'the build could not reach the network: fetch dependencies ahead (a wheel dir in the code) or allow the access',
  ],
  [/No space left on device/, "the agent host's disk is full: free space where the Docker engine stores images"],
];

const clip = (s: string) => (s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN - 1)}…` : s);

export class BuildTrail {
  private step: { at: string; instruction: string } | undefined;
  private lines: string[] = [];
  private partial = '';

  /** Feeds the build's output as it streams (any chunking). */
  feed(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) this.line(raw.replace(ANSI, '').replace(/\r$/, '').trimEnd());
  }

  private line(line: string): void {
    if (!line.trim()) return;
    const step = STEP.exec(line);
    if (step) {
      this.step = { at: step[1] ?? '', instruction: step[2] ?? '' };
      this.lines = [];
      return;
    }
    if (NOISE.test(line)) return;
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) this.lines.shift();
  }

  /**
   * The failure, for the run's message: the step, the engine's error, the last line of output before it, and a hint
   * when a known cause shows in them.
   */
  describe(engineError: string): string {
    if (this.partial) this.line(this.partial);
    this.partial = '';
    const error = engineError.trim();
    const output = this.lines.filter((l) => l !== error);
    const last = output.at(-1);
    const at = this.step ? ` at step ${this.step.at} (${clip(this.step.instruction)})` : '';
    const said = last ? `; its last output: ${clip(last)}` : '';
    const hint = HINTS.find(([re]) => re.test(error) || output.some((l) => re.test(l)))?.[1];
    return `The image build failed${at}: ${clip(error)}${said}${hint ? `. Likely cause: ${hint}.` : ''}`;
  }
}
