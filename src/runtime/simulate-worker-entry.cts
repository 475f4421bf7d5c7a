// The worker threads' entry, in CommonJS on purpose. Piscina loads a worker file with require()
// first, and on Node 20.19+ require() of an ES module builds a synchronous "facade" that aborts the
// whole process (ModuleWrap::CreateRequiredModuleFacade) when the thread is terminated mid-load.
// This file is plain CommonJS, and it loads the ES-module worker with import(), which a
// terminating thread abandons cleanly.
import { workerData } from 'node:worker_threads';

interface EntryData {
  workerModuleUrl: string;
}
type Handler = (task: unknown) => unknown;

const { workerModuleUrl } = workerData as EntryData;
// Started at thread start-up, so the first task does not pay for loading the twin.
const handler: Promise<Handler> = import(workerModuleUrl).then(
  (m: { default: Handler }) => m.default,
);

export = async function run(task: unknown): Promise<unknown> {
  return (await handler)(task);
};
