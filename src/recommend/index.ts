export * from './schema.js';
export {
  Recommender,
  NoServingConfigurationError,
  vllmArgs,
  offeredTokensPerSecond,
  type RecommenderDeps,
} from './recommender.js';
