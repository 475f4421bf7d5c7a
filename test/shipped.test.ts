import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { datasetPath, readDataset } from '../src/model/dataset.js';
import { loadModel } from '../src/model/model.js';
import { loadLatencyModel } from '../src/profiles/latency.js';
import { listProfiles } from '../src/profiles/store.js';
import { verdictRunsPath, verdictRunsSchema } from '../src/profiles/verdicts.js';
import { TWIN_VERSION } from '../src/twin/index.js';

// The training sets' labels (and so the forests), the latency correction and the edge rule's
// verdict errors are all measured on one twin. A release whose artefacts name another twin than the one it runs answers
// from inconsistent parts (a forest trained on twin 1.1.0's optima beside twin 1.2.0), so CI
// refuses it: change the twin, then rebuild them (docs/training.md, npm run validate:twin).
describe('shipped artefacts', () => {
  const profiles = listProfiles();

  it('ship a forest, a latency model and verdict errors for every calibrated profile', () => {
    expect(profiles.length).toBeGreaterThan(0);
    for (const id of profiles) {
      expect(() => loadModel(id), id).not.toThrow();
      expect(loadLatencyModel(id), id).toBeDefined();
    }
  });

  it(`were all built on the twin this release runs (${TWIN_VERSION})`, () => {
    for (const id of profiles) {
      const verdicts = verdictRunsSchema.parse(
        JSON.parse(readFileSync(verdictRunsPath(id), 'utf8')),
      );
      expect(
        {
          forest: loadModel(id).twinVersion,
          latency: loadLatencyModel(id)?.twinVersion,
          verdicts: verdicts.twinVersion,
        },
        id,
      ).toEqual({ forest: TWIN_VERSION, latency: TWIN_VERSION, verdicts: TWIN_VERSION });
      // The forest's training set too: readDataset refuses rows another twin labelled.
      expect(readDataset(datasetPath(id)).length, id).toBeGreaterThan(0);
    }
  });
});
