// The bindings the tests see through `cloudflare:test`'s `env` are the Worker's own.
import type { Env as WorkerEnv } from '../src/env';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
