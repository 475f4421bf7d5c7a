// The API fuzzing of test/fuzz/harness.ts for every route but POST /v1/recommend, which
// test/fuzz-recommend.test.ts fuzzes side by side with this file.
import { fuzzPostAndGetRoutes } from './fuzz/harness.js';

fuzzPostAndGetRoutes(['/v1/simulate', '/v1/check', '/v1/profiles', '/v1/placement']);
