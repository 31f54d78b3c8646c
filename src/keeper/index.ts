// The FIFO keeper's room: a process of its own (main.ts), started, found and
// stopped by plugind through these.
export { ensureFifoKeeper, keeperPaths, runningKeeper, stopFifoKeeper } from './keeper.js';
