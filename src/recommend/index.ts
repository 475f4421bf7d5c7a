export * from './schema.js';
export {
  Recommender,
  NoServingConfigurationError,
  vllmArgs,
  type RecommenderDeps,
} from './recommender.js';
