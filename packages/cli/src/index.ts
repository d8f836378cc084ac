export { buildProgram, main } from './main.js';
export { packDirectory, splitCommand } from './commands/launchRun.js';
