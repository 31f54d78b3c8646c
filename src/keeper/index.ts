// The FIFO keeper's room: a program of its own (fifo-keeper/main.go, built
// into build/plugind-fifo-keeper), started, found and stopped by plugind
// through these.
export { ensureFifoKeeper, keeperBinary, pipeHolderBinary, keeperPaths, runningKeeper, stopFifoKeeper } from './keeper.js';
