/**
 * Preloaded into a service process by benchmarks that measure memory (with --expose-gc): SIGUSR2
 * runs a full garbage collection, so resident memory is read without garbage in it.
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (collect !== undefined) process.on("SIGUSR2", () => collect());
