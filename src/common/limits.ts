// What plugind's API accepts: the executor enforces these, and the client
// and the CLI check them first, so a bad value is refused before a call.
export const MAX_SPEC_BYTES = 1 << 20;
export const MAX_STOP_TIMEOUT_MS = 3600_000;
export const MAX_LOG_SIZE = 2 ** 40;
export const MAX_LOG_FILES = 100;
/** A Docker plugin config (a bundle's config.json, an image's config blob) larger than this is no plugin config. */
export const MAX_PLUGIN_CONFIG_BYTES = 1 << 20;

/**
 * --env's check, the same in the CLI and the API: the first entry that is
 * not KEY=VALUE (a name, '=', a value that may be empty) as its error
 * says it, or undefined when all are.
 */
export function envProblem(env: readonly string[]): string | undefined {
  const bad = env.find((e) => !/^[^=]+=/.test(e));
  return bad === undefined ? undefined : `--env ${JSON.stringify(bad)}: want KEY=VALUE`;
}
