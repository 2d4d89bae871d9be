/**
 * @module The Worker's bindings, as every module sees them: config vars, the TokenStore namespace,
 * and (by name, from config) Worker secrets and egress bindings.
 */
import type { ConfigVars } from './config';
import type { TokenStore } from './token/store';

export interface Env extends ConfigVars {
  TOKEN_STORE: DurableObjectNamespace<TokenStore>;
}
