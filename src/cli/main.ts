import { describe } from './options.js';

/**
 * A command's exit code; errors a user can fix exit 2 with a one-line message, never a stack.
 * Each command is imported when run: `recommend` in a CI job need not load the HTTP server,
 * SQLite and the Redis client.
 */
type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  serve: {
    run: async (argv) => (await import('./serve.js')).serveCommand(argv),
    summary: 'serve the HTTP API (Swagger UI at /docs)',
  },
  check: {
    run: async (argv) => (await import('./check.js')).checkCommand(argv),
    summary: 'check a configuration: exit 0 ok, 1 starving/infeasible/slo-violated, 2 error',
  },
  recommend: {
    run: async (argv) => (await import('./recommend.js')).recommendCommand(argv),
    summary: 'recommend --max-cpu-loras / --max-loras for a workload (--file W.json [--json])',
  },
  place: {
    run: async (argv) => (await import('./place.js')).placeCommand(argv),
    summary:
      'place an adapter catalog on GPUs (--file P.json, or --trace requests.csv --profile P --rank R)',
  },
  worker: {
    run: async (argv) => (await import('./worker.js')).workerCommand(argv),
    summary: 'run queued twin simulations from Redis (--redis URL --concurrency N)',
  },
  simulate: {
    run: async (argv) => (await import('./simulate.js')).simulateCommand(argv),
    summary: 'run the digital twin on --scenario FILE or --batch FILE.jsonl',
  },
  dataset: {
    run: async (argv) => (await import('./dataset.js')).datasetCommand(argv),
    summary: 'build a training set: workloads and their twin optimum (--profile P --workloads N)',
  },
  train: {
    run: async (argv) => (await import('./train.js')).trainCommand(argv),
    summary: 'fit the random forests of a profile from its dataset (--profile P)',
  },
  profile: {
    run: async (argv) => (await import('./profile.js')).profileCommand(argv),
    summary:
      'derive a profile from a GPU datasheet and a model config (derive --gpu G --model M), or list them',
  },
  measure: {
    run: async (argv) => (await import('./measure.js')).measureCommand(argv),
    summary:
      'plan measurements for your GPU (plan --gpu G --model M --out DIR) and drive their load (run)',
  },
  calibrate: {
    run: async (argv) => (await import('./calibrate.js')).calibrateCommand(argv),
    summary: 'fit a profile from measurement tables (--data DIR --model M)',
  },
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`);
  return [
    'usage: loraplan <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    "Run 'loraplan <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`loraplan: unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    process.stderr.write(`loraplan ${name}: ${describe(error)}\n`);
    return 2;
  }
}

/** Runs the CLI and sets the process exit code; the bin script and direct execution call it. */
export function run(argv: string[]): void {
  // Output piped into `head` closes early: that is the reader's choice, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`loraplan: ${describe(error)}\n`);
      process.exitCode = 2;
    },
  );
}

// Direct execution (node --import tsx src/cli/main.ts ...); the bin script calls run() itself,
// since npx runs it through a link whose path says nothing about this file.
if (import.meta.url === `file://${process.argv[1]}`) run(process.argv.slice(2));
