// `node --import ./record-loads.mjs`: appends the URL of every module the
// ESM loader loads to the file named by RECORD_LOADS, one a line. Registered
// after tsx, it sees .ts modules as well (hooks chain last-registered first).
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
    import { appendFileSync } from 'node:fs';
    let out;
    export function initialize(data) { out = data.out; }
    export async function load(url, context, next) {
      appendFileSync(out, url + '\\n');
      return next(url, context);
    }
  `)}`,
  { data: { out: process.env.RECORD_LOADS } },
);
