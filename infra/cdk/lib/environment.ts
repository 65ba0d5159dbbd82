// Each function's environment: exactly the variables infra/functions.json says it reads from the
// environment (`"from": "env"`), never a key of the secret. The stack fills the ones it owns (the
// resources' names, the bot timeout it checks the worker's timeout against, the allow-list, the
// portal's REST budget split between instances); the operator gives the others through the
// `environment` setting. A variable nobody set is present and empty: the function treats a blank
// value as unset and applies its own default (crates/core/src/config.rs), so defaults live in one
// place, the Rust code.

import type { Settings } from './settings';
import type { Spec } from './spec';

/** Values only the stack knows (tokens of the resources it creates). */
export interface ResourceValues {
  readonly OLBRIDGE_TABLE: string;
  readonly OLBRIDGE_QUEUE_URL: string;
  readonly OLBRIDGE_DLQ_URL: string;
  readonly OLBRIDGE_SECRET_ID: string;
}

/** The receiver's source-address allow-list (comma-separated CIDRs; the receiver enforces it). */
export const ALLOWED_CIDRS = 'OLBRIDGE_ALLOWED_CIDRS';

/**
 * What a function missing from infra/functions.json gets: the resources it cannot run without
 * (every function of the stack is listed today; this is for one added before the file knows it).
 */
export const FALLBACK_VARS = ['OLBRIDGE_TABLE', 'OLBRIDGE_QUEUE_URL', 'OLBRIDGE_SECRET_ID', 'OLBRIDGE_SECRET_TTL_SEC'] as const;

const STACK_OWNED = new Set(['OLBRIDGE_TABLE', 'OLBRIDGE_QUEUE_URL', 'OLBRIDGE_DLQ_URL', 'OLBRIDGE_SECRET_ID', 'BOT_HTTP_TIMEOUT_SEC', ALLOWED_CIDRS]);

/** Every key the secret holds or any function reads from it: never an environment variable. */
export function secretKeys(spec: Spec): Set<string> {
  const keys = new Set(spec.resources.secret.keys);
  for (const f of spec.functions.functions) for (const v of f.vars) if (v.from === 'secret') keys.add(v.name);
  return keys;
}

/** The names function `name` reads from its environment. */
export function envVarNames(spec: Spec, name: string): readonly string[] {
  const f = spec.functions.functions.find((x) => x.name === name);
  if (f === undefined) return FALLBACK_VARS;
  return f.vars.filter((v) => v.from === 'env').map((v) => v.name);
}

/** Checks the operator's `environment` against what the functions read; throws listing every problem. */
export function checkEnvironment(spec: Spec, settings: Settings, deployed: readonly string[]): void {
  const secret = secretKeys(spec);
  const read = new Set(deployed.flatMap((f) => envVarNames(spec, f)));
  const problems: string[] = [];
  for (const name of Object.keys(settings.environment)) {
    if (secret.has(name)) problems.push(`${name} is a key of the secret: put its value in the secret (see docs/deploy.md), never in an environment variable`);
    else if (name === 'BOT_HTTP_TIMEOUT_SEC') problems.push(`${name} is set from the botTimeoutSec setting (the worker's timeout is checked against it)`);
    else if (STACK_OWNED.has(name)) problems.push(`${name} is set by the stack from the resource it names${name === ALLOWED_CIDRS ? ' (use the allowedCidrs setting)' : ''}`);
    else if (!read.has(name)) problems.push(`${name} is not read by any deployed function (infra/functions.json)`);
  }
  for (const f of deployed) {
    for (const v of envVarNames(spec, f)) {
      if (secret.has(v)) problems.push(`infra/functions.json: ${f} reads ${v} from its environment, but ${v} is a key of the secret`);
    }
  }
  if (settings.allowedCidrs.length > 0 && !envVarNames(spec, 'receiver').includes(ALLOWED_CIDRS)) {
    problems.push(
      `allowedCidrs is set, but the receiver does not read ${ALLOWED_CIDRS} (infra/functions.json): the allow-list would not be enforced. ` +
        'Deploy without it until the receiver implements it.',
    );
  }
  if (problems.length > 0) throw new Error(`function environment has ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`);
}

/** The environment of function `name`. */
export function environmentFor(spec: Spec, settings: Settings, name: string, resources: ResourceValues): Record<string, string> {
  const owned: Record<string, string> = {
    ...resources,
    BOT_HTTP_TIMEOUT_SEC: String(settings.botTimeoutSec),
    [ALLOWED_CIDRS]: settings.allowedCidrs.join(','),
    // The portal's leaky bucket is one for the whole portal, and so is ours: every instance of the
    // worker and the poller draws from one budget kept in the table (olbridge_aws::setup::
    // shared_rate_limiter), so each is given the whole plan, unless the operator set the values.
    B24_RATE_PER_SEC: String(settings.portalRatePerSec),
    B24_RATE_BURST: String(settings.portalBurst),
  };
  const env: Record<string, string> = {};
  for (const v of envVarNames(spec, name)) {
    env[v] = STACK_OWNED.has(v) ? owned[v] : (settings.environment[v] ?? owned[v] ?? '');
  }
  return env;
}
