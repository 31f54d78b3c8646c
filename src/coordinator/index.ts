export { Coordinator, pluginsDir, type CoordinatorOptions, type PluginInfo } from './coordinator.js';
