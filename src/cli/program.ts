// The commander program: every command and its options. The options of `start` are data
// (start-options.ts), so that a plain `nserve start` command line is read without loading commander.
import { Command, Option } from 'commander';
import { describeConfig, formatConfig } from '../config/describe.js';
import { type CliOptions, loadConfig } from '../config/index.js';
import { usageError } from '../errors.js';
import { VERSION } from '../version.js';
import { fdsViaControl, registerCtlCommand } from './ctl.js';
import { registerFdsCommand } from './fds.js';
import { launchCwd, start } from './start.js';
import { START_OPTIONS } from './start-options.js';
import { registerTopCommand } from './top.js';

/** What follows `--` on a `start` or `config` command line (cli/start-options.ts splitAppArgs). */
export interface ProgramOptions {
  appArgs?: string[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

const APP_HELP =
  'app module: default-exports (req, res) or { fetch(request) }, or listens itself; resolved against --directory';

/** The options of `start`, shared with `config --print` so both read the same configuration. */
function withStartOptions(cmd: Command): Command {
  for (const o of START_OPTIONS) {
    if (o.choices !== undefined) cmd.addOption(new Option(o.flags, o.description).choices(o.choices));
    else if (o.repeatable === true) cmd.option(o.flags, o.description, collect);
    else cmd.option(o.flags, o.description);
  }
  return cmd;
}

export function buildProgram(options: ProgramOptions = {}): Command {
  const program = new Command();
  // The app's arguments reach the action as the `args` option, as parseStartArgs gives them.
  if (options.appArgs !== undefined) {
    const appArgs = options.appArgs;
    program.hook('preAction', (_program, action) => {
      action.setOptionValue('args', appArgs);
    });
  }
  program
    .name('nserve')
    .description('Production application server and process manager for Node.js')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({
      // commander's own errors are one line ("error: unknown option '--x'"); keep them so, named, and
      // without a usage hint on a line of its own (every usage error is one line).
      writeErr: (s) => {
        if (!s.startsWith('error:')) return process.stderr.write(s);
        // `nserve start app.js start`: the second argument was meant for the app.
        const line = s.trimEnd();
        if (/too many arguments for '(start|config)'/.test(line))
          return process.stderr.write(
            `nserve: ${line.replace(/\.$/, '')} (the app's own arguments go after --: nserve start APP [options] -- ARGS)\n`,
          );
        return process.stderr.write(`nserve: ${line}\n`);
      },
    });
  withStartOptions(
    program
      .command('start')
      .description(
        'serve an HTTP app module (single mode, or cluster mode with -w N); after --, the arguments the app gets (process.argv[2…])',
      )
      .usage('[options] [app] [-- app arguments…]')
      .argument('[app]', APP_HELP),
  ).action(async (app: string | undefined, opts: CliOptions) => start(app, opts));
  withStartOptions(
    program
      .command('config')
      .description(
        'show the merged configuration (defaults, config file, flags, environment) and where each value came from',
      )
      .argument('[app]', APP_HELP)
      .option('--print', 'print the configuration (what `nserve config` does anyway)')
      .option('--json', 'print JSON'),
  ).action(async (app: string | undefined, opts: CliOptions & { json?: boolean }) => {
    const config = await loadConfig(app, opts, launchCwd());
    process.stdout.write(
      opts.json === true ? `${JSON.stringify(describeConfig(config), null, 2)}\n` : formatConfig(config),
    );
  });
  registerCtlCommand(program);
  // `nserve restart` and friends are ctl commands: say so instead of "unknown command".
  for (const name of ['restart', 'phased-restart', 'stop', 'halt', 'status', 'stats', 'workers']) {
    program
      .command(name, { hidden: true })
      .argument('[args...]')
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw usageError(
          'ERR_NSERVE_USAGE',
          `${name} is a ctl command: nserve ctl ${name} -S STATE (or -P PIDFILE; nserve ctl --help)`,
        );
      });
  }
  registerFdsCommand(program, fdsViaControl);
  registerTopCommand(program);
  return program;
}
