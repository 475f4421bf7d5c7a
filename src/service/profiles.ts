import { z } from 'zod';
import { deriveFlagsSchema, type DeriveRequest } from '../derive/index.js';
import { latencyEnvelopeSchema } from '../latency/index.js';
import { loadLatencyModel } from '../profiles/latency.js';
import { listProfiles, loadProfile, measuredProfiles, registerProfile } from '../profiles/store.js';
import type { Db } from '../storage/db.js';
import { ProfileRepository } from '../storage/profiles.js';
import { evidenceOf, evidenceSchema, type Profile } from '../twin/profile.js';

/** POST /v1/profiles and `loraplan profile derive`: the same inputs. */
export const deriveRequestSchema = z
  .object({
    gpu: z
      .string()
      .min(1)
      .max(100)
      .meta({ description: 'A GPU of models/gpus/catalog.json, e.g. a100-80gb-sxm' }),
    model: z.string().min(1).max(100).optional().meta({
      description: 'A model of models/configs/, e.g. llama-3.1-8b-instruct; or give config',
    }),
    config: z.record(z.string(), z.unknown()).optional().meta({
      description: "A Hugging Face config.json, as the model's repository publishes it",
    }),
    flags: deriveFlagsSchema.optional().meta({
      description:
        "vLLM flags that size memory: gpuMemoryUtilization (0.9), maxModelLen (the config's max_position_embeddings), maxNumBatchedTokens (2048), maxNumSeqs (2048)",
    }),
    fitOn: z.array(z.string().min(1).max(200)).min(1).max(16).optional().meta({
      description: 'Measured profiles to learn the achieved-fraction factors from (default: all)',
    }),
  })
  .strict();
export type DeriveProfileRequest = z.infer<typeof deriveRequestSchema>;

export const profileSummarySchema = z.object({
  id: z.string(),
  evidence: evidenceSchema,
  gpu: z.string(),
  model: z.string(),
  vllmVersion: z.string(),
  maxModelLen: z.number(),
  allowedLoraRanks: z.array(z.number()),
  expectedError: z.record(z.string(), z.number()).nullable().meta({
    description:
      'For derived profiles: the out-of-fold errors validate:derived measured (docs/validation/derived.md); null for measured ones (docs/validation/twin.md)',
  }),
  latencyCalibration: z
    .object({ coverage: z.number(), runs: z.number().int(), envelope: latencyEnvelopeSchema })
    .nullable()
    .meta({
      description:
        "What the latency intervals' coverage was measured on (null: no latency calibration). Predictions outside these ranges say so (latency.envelope).",
    }),
});
export type ProfileSummary = z.infer<typeof profileSummarySchema>;

/** Where a derivation runs: given the request and the profiles factors may be learned from. */
export type Deriver = (request: DeriveRequest, measured: Profile[]) => Promise<Profile>;

/** Derived profiles: derivation, storage in SQLite and registration for every route. */
export class ProfileService {
  private readonly repository: ProfileRepository;

  constructor(
    db: Db,
    /** The service's runs on a thread of its own (src/runtime/derive-pool.ts). */
    private readonly deriver: Deriver,
  ) {
    this.repository = new ProfileRepository(db);
    for (const p of this.repository.all()) registerProfile(p);
  }

  /** Derives, stores and registers a profile; the same inputs give the same id. */
  async derive(request: DeriveProfileRequest): Promise<{ profile: Profile; created: boolean }> {
    const profile = await this.deriver(request, measuredProfiles());
    const created = !listProfiles().includes(profile.id);
    this.repository.save(profile);
    registerProfile(profile);
    return { profile, created };
  }

  summaries(): ProfileSummary[] {
    return listProfiles().map((id) => {
      const p = loadProfile(id);
      const latency = loadLatencyModel(id);
      const expected = (p.derivation as { expectedError?: Record<string, number> } | undefined)
        ?.expectedError;
      return {
        id,
        evidence: evidenceOf(p),
        gpu: p.gpu,
        model: p.model,
        vllmVersion: p.vllmVersion,
        maxModelLen: p.maxModelLen,
        allowedLoraRanks: p.allowedLoraRanks,
        expectedError: expected ?? null,
        latencyCalibration: latency
          ? { coverage: latency.coverage, runs: latency.runs, envelope: latency.envelope }
          : null,
      };
    });
  }
}
