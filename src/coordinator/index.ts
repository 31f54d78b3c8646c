export { Coordinator, type CoordinatorOptions, type PluginInfo } from './coordinator.js';
