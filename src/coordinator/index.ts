export { Coordinator, type CoordinatorOptions, type PluginInfo } from './coordinator.js';
export { shardOf } from './shard-map.js';
