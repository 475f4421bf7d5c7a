#!/usr/bin/env node
// The CLI runs from the compiled output; `npm ci` builds it through the `prepare` script.
import { run } from '../dist/cli/main.js';

run(process.argv.slice(2));
