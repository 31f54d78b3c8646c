// Runs work for one key strictly in order while different keys run in
// parallel: every operation and exit of one plugin id goes through here.
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  has(key: string): boolean {
    return this.#tails.has(key);
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#tails.size;
  }
}
