// The bindings the tests see through `cloudflare:test`'s `env` are the Worker's own.
import type { Env as WorkerEnv } from '../src/token/store';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
