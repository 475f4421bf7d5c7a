import type { Profile } from './profile.js';

/**
 * An upper bound on the prompt + output tokens per second one server can complete, from the
 * profile's step-time model alone. A step carries at most `maxNumBatchedTokens` tokens and costs at
 * least its fixed part (base, LoRA and scheduler intercepts, one slot, one adapter) plus each
 * token's own cost; every completed prompt token was prefilled once and every output token decoded
 * once, so no schedule beats the best per-token time at full batches. Negative coefficients are
 * taken as 0 and the KV-read term is dropped, which only loosens the bound: it holds for any
 * adapters, slots and arrivals.
 */
export function capacityTokensPerSecond(
  profile: Profile,
  lengths: { prompt: number; output: number },
  maxNumBatchedTokens = 2048,
): number {
  const pos = (v: number) => Math.max(0, v);
  const { base, lora } = profile.stepTime;
  const fixedMs =
    pos(base.intercept) +
    pos(lora.intercept) +
    pos(lora.perSlot) +
    pos(lora.perAdapterInBatch) +
    pos(profile.scheduler.intercept);
  const prefillTokenMs = pos(base.perPrefillToken) + pos(lora.perBatchedToken);
  const decodeTokenMs =
    pos(base.perDecodeSeq) + pos(lora.perBatchedToken) + pos(profile.scheduler.perRunningRequest);
  const total = lengths.prompt + lengths.output;
  const prefillShare = total > 0 ? lengths.prompt / total : 0;
  const msPerToken =
    fixedMs / maxNumBatchedTokens +
    prefillShare * prefillTokenMs +
    (1 - prefillShare) * decodeTokenMs;
  return 1000 / msPerToken;
}

/**
 * True when a configuration must starve whatever its adapters and slots: even at the capacity
 * bound it would complete less than (1 - threshold) of the offered tokens.
 */
export function mustStarve(
  offeredTokensPerSecond: number,
  capacity: number,
  starvationThreshold: number,
): boolean {
  return capacity < (1 - starvationThreshold) * offeredTokensPerSecond;
}
