// What plugind's API accepts: the executor enforces these, and the client
// and the CLI check them first, so a bad value is refused before a call.
export const MAX_SPEC_BYTES = 1 << 20;
export const MAX_STOP_TIMEOUT_MS = 3600_000;
export const MAX_LOG_SIZE = 2 ** 40;
export const MAX_LOG_FILES = 100;
/** A Docker plugin config (a bundle's config.json, an image's config blob) larger than this is no plugin config. */
export const MAX_PLUGIN_CONFIG_BYTES = 1 << 20;
