/**
 * @module The Worker's bindings, as every module sees them: the config vars, and the TokenStore
 * namespace (typed by its RPC surface). Secrets and bindings that the config names are read through
 * config/secrets.ts. Near the floor of the import graph: it imports only types (the config vars, the TokenStore's RPC).
 */
import type { ConfigVars } from './config/schema';
import type { TokenStoreApi } from './token/store-api';

export interface Env extends ConfigVars {
  TOKEN_STORE: DurableObjectNamespace<TokenStoreApi>;
}
