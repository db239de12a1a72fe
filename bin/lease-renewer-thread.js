// The entry of a replica's lease renewal thread (src/cluster/lease-renewer.ts). The product
// runs from its TypeScript sources through tsx's loader, and a worker thread does not
// inherit the main thread's, so it registers its own, as the `powerplane` executable does.
import { register } from 'tsx/esm/api';

register();
await import('../src/cluster/lease-renewer.worker.ts');
