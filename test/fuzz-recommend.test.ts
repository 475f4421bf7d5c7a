// The API fuzzing of test/fuzz/harness.ts for POST /v1/recommend, the longest route to fuzz, in a
// file of its own so that vitest runs it beside test/fuzz.test.ts.
import { fuzzPostRoutes } from './fuzz/harness.js';

fuzzPostRoutes(['/v1/recommend']);
