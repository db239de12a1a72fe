// The entry of the lease renewal thread: the product runs from its TypeScript sources, and
// a worker thread does not inherit the main thread's loader, so it registers its own.
import { register } from 'tsx/esm/api';

register();
await import('./lease-renewer.worker.ts');
