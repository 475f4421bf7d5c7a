export * from './schema.js';
export {
  Recommender,
  NoServingConfigurationError,
  vllmArgs,
  snapLog,
  offeredTokensPerSecond,
  type RecommenderDeps,
} from './recommender.js';
