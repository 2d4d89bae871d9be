/**
 * @module The Worker's bindings, as every module sees them: the config vars, and the TokenStore
 * namespace (typed by its RPC surface). Secrets and bindings that the config names are read through
 * config/secrets.ts. Near the floor of the import graph: it imports only types (the config vars, the TokenStore's and the Pacer's RPC).
 */
import type { ConfigVars } from './config/schema';
import type { PacerApi } from './pacing/pacer-api';
import type { TokenStoreApi } from './token/store-api';

export interface Env extends ConfigVars {
  TOKEN_STORE: DurableObjectNamespace<TokenStoreApi>;
  /** One Pacer per credential set whose upstream has `pacing` (pacing/pacer.ts). */
  PACER: DurableObjectNamespace<PacerApi>;
}
