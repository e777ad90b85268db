// The nserve command line: the commander program (cli/program.ts) reads the command and runs it. A plain
// `nserve start` command line does not come here (bin/nserve.js → cli/start-entry.ts) unless commander
// is needed to answer it. One process image plays one role, picked once in cli/start.ts: boot check,
// worker, master or single.
import { CommanderError } from 'commander';
import { EXIT_USAGE, reportFailure } from './exit.js';
import { buildProgram } from './program.js';
import { splitAppArgs } from './start-options.js';

export async function main(argv: string[]): Promise<void> {
  // `start` and `config`: what follows `--` is the app's, never read as nserve's options.
  const split =
    argv[2] === 'start' || argv[2] === 'config'
      ? splitAppArgs(argv.slice(3))
      : { own: argv.slice(3), app: undefined };
  const program = buildProgram({ appArgs: split.app });
  try {
    await program.parseAsync([...argv.slice(0, 3), ...split.own]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    reportFailure(err);
  }
}

void main(process.argv);
