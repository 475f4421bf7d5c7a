#!/usr/bin/env node
// The CLI runs from the compiled output; `npm ci` builds it through the `prepare` script.
import '../dist/cli/main.js';
