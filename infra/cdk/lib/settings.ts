// The deployment's settings: what an operator chooses per stage (the rest comes from infra/*.json).
// Every setting has a default, can be given as a prop (tests) or as CDK context (`-c key=value` or
// cdk.json), and is checked once, here, with every problem reported together.

import * as path from 'node:path';

export type Arch = 'x86_64' | 'arm64';

export interface Settings {
  /** Stage name (`dev`, `prod`, ...): part of every resource name. */
  readonly stage: string;
  /** Production: the table gets deletion protection, and the table, secret and logs are retained. */
  readonly production: boolean;
  /** Prefix of every physical name (functions, table, queues, topic, dashboard). */
  readonly namePrefix: string;
  /** Secrets Manager name of the one secret. */
  readonly secretName: string;
  /** Directory holding `olbridge-<name>/bootstrap` (what `cargo lambda build --release` writes). */
  readonly lambdaDir: string;
  readonly architecture: Arch;
  readonly memoryMb: Readonly<Record<'receiver' | 'worker' | 'poller' | 'rotator', number>>;
  /** `BOT_HTTP_TIMEOUT_SEC`: one bot call; the worker's timeout must exceed it. */
  readonly botTimeoutSec: number;
  /** Records per worker invocation (FIFO: at most 10). */
  readonly workerBatchSize: number;
  /** Concurrent worker invocations the queue may drive (2..1000). */
  readonly workerMaxConcurrency: number;
  /** Whether the reconciliation poller is deployed (its binary must exist). */
  readonly poller: boolean;
  /** The poller's schedule, in minutes. */
  readonly pollerRateMinutes: number;
  /** The poller alarm fires when it has not run for this many minutes. */
  readonly pollerSilenceMinutes: number;
  /**
   * Whether the synthetic canary runs (a poller invocation with `{"olbridge":"canary"}` on its own
   * schedule, and the `canary-failed` alarm). Default: on when the poller is deployed and the
   * environment names a canary dialog (`B24_BOT_ID` or `OLBRIDGE_CANARY_DIALOG`) outside operator mode.
   */
  readonly canary: boolean;
  /** The canary's schedule, in minutes. */
  readonly canaryRateMinutes: number;
  /** Log retention of every function and of the API's access log, in days. */
  readonly logRetentionDays: number;
  /** Alarm notifications go to this address (none: the topic has no subscription). */
  readonly alarmEmail?: string;
  /** Source CIDRs allowed to POST events (empty: anyone; the event's token is checked regardless). */
  readonly allowedCidrs: readonly string[];
  /** Stage throttling of the HTTP API (steady requests per second, and burst). */
  readonly apiRateLimit: number;
  readonly apiBurstLimit: number;
  /** The portal's REST budget, shared by every worker instance and the poller. */
  readonly portalRatePerSec: number;
  readonly portalBurst: number;
  /** Values of the functions' other environment variables (names from infra/functions.json). */
  readonly environment: Readonly<Record<string, string>>;
  /** Alarm thresholds. */
  readonly queueAgeAlarmSec: number;
  readonly fallbackAlarmCount: number;
  readonly escalationAlarmCount: number;
  readonly replySuccessAlarmPercent: number;
  readonly botLatencyAlarmMs: number;
}

export type SettingsInput = Partial<Omit<Settings, 'memoryMb'>> & { readonly memoryMb?: Partial<Settings['memoryMb']> };

const PRODUCTION_STAGES = ['prod', 'production'];
const CIDR4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/;
const CIDR6 = /^[0-9a-fA-F:]+:[0-9a-fA-F:]*\/(12[0-8]|1[01]\d|[1-9]?\d)$/;

/** Fills defaults and checks everything; throws one error listing every problem. */
export function resolveSettings(input: SettingsInput, cdkDir: string): Settings {
  const stage = input.stage ?? 'dev';
  const namePrefix = input.namePrefix ?? `olbridge-${stage}`;
  const botTimeoutSec = input.botTimeoutSec ?? 120;
  const s: Settings = {
    stage,
    production: input.production ?? PRODUCTION_STAGES.includes(stage),
    namePrefix,
    secretName: input.secretName ?? `olbridge/${stage}`,
    lambdaDir: path.resolve(cdkDir, input.lambdaDir ?? '../../target/lambda'),
    architecture: input.architecture ?? 'x86_64',
    memoryMb: { receiver: 256, worker: 256, poller: 256, rotator: 128, ...input.memoryMb },
    botTimeoutSec,
    workerBatchSize: input.workerBatchSize ?? 10,
    workerMaxConcurrency: input.workerMaxConcurrency ?? 2,
    poller: input.poller ?? true,
    pollerRateMinutes: input.pollerRateMinutes ?? 1,
    pollerSilenceMinutes: input.pollerSilenceMinutes ?? 10,
    canary: input.canary ?? ((input.poller ?? true) && canaryDialogNamed(input.environment ?? {}) && input.environment?.OLBRIDGE_MODE !== 'operator'),
    canaryRateMinutes: input.canaryRateMinutes ?? 5,
    logRetentionDays: input.logRetentionDays ?? 30,
    alarmEmail: input.alarmEmail || undefined,
    allowedCidrs: input.allowedCidrs ?? [],
    apiRateLimit: input.apiRateLimit ?? 50,
    apiBurstLimit: input.apiBurstLimit ?? 100,
    portalRatePerSec: input.portalRatePerSec ?? 2,
    portalBurst: input.portalBurst ?? 40,
    environment: input.environment ?? {},
    queueAgeAlarmSec: input.queueAgeAlarmSec ?? 600,
    fallbackAlarmCount: input.fallbackAlarmCount ?? 3,
    escalationAlarmCount: input.escalationAlarmCount ?? 20,
    replySuccessAlarmPercent: input.replySuccessAlarmPercent ?? 90,
    botLatencyAlarmMs: input.botLatencyAlarmMs ?? (botTimeoutSec * 1000) / 2,
  };

  const problems: string[] = [];
  const int = (v: number, name: string, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) problems.push(`${name}: expected an integer ${lo}..${hi}, got ${v}`);
  };
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(s.stage)) problems.push(`stage: expected lower-case letters, digits and '-' (at most 20), got ${JSON.stringify(s.stage)}`);
  if (!/^[A-Za-z0-9-]{1,40}$/.test(s.namePrefix)) problems.push(`namePrefix: expected letters, digits and '-' (at most 40), got ${JSON.stringify(s.namePrefix)}`);
  if (!['x86_64', 'arm64'].includes(s.architecture)) problems.push(`architecture: expected x86_64 or arm64, got ${JSON.stringify(s.architecture)}`);
  for (const [fn, mb] of Object.entries(s.memoryMb)) int(mb, `memoryMb.${fn}`, 128, 10240);
  if (!(s.botTimeoutSec > 0 && s.botTimeoutSec <= 900)) problems.push(`botTimeoutSec: expected seconds, 0 < n <= 900 (as BOT_HTTP_TIMEOUT_SEC), got ${s.botTimeoutSec}`);
  int(s.workerBatchSize, 'workerBatchSize', 1, 10);
  int(s.workerMaxConcurrency, 'workerMaxConcurrency', 2, 1000);
  int(s.pollerRateMinutes, 'pollerRateMinutes', 1, 60);
  int(s.pollerSilenceMinutes, 'pollerSilenceMinutes', 1, 1440);
  int(s.canaryRateMinutes, 'canaryRateMinutes', 1, 60);
  if (s.canary && !s.poller) problems.push('canary: the canary runs in the poller, which is not deployed (poller: false)');
  if (s.canary && !canaryDialogNamed(s.environment)) problems.push('canary: needs a canary dialog: B24_BOT_ID (the bot\'s private dialog) or OLBRIDGE_CANARY_DIALOG in environment');
  if (s.pollerSilenceMinutes < 2 * s.pollerRateMinutes) problems.push(`pollerSilenceMinutes: at least twice pollerRateMinutes (${s.pollerRateMinutes}), or one late run raises the alarm`);
  const retentions = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
  if (!retentions.includes(s.logRetentionDays)) problems.push(`logRetentionDays: CloudWatch Logs accepts ${retentions.join(', ')}; got ${s.logRetentionDays}`);
  if (s.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s.alarmEmail)) problems.push(`alarmEmail: not an e-mail address: ${JSON.stringify(s.alarmEmail)}`);
  for (const cidr of s.allowedCidrs) {
    if (!CIDR4.test(cidr) && !CIDR6.test(cidr)) problems.push(`allowedCidrs: not an IPv4 or IPv6 CIDR: ${JSON.stringify(cidr)}`);
  }
  if (!(s.apiRateLimit > 0)) problems.push(`apiRateLimit: expected requests per second > 0, got ${s.apiRateLimit}`);
  int(s.apiBurstLimit, 'apiBurstLimit', 1, 5000);
  if (!(s.portalRatePerSec > 0 && s.portalRatePerSec <= 1000)) problems.push(`portalRatePerSec: expected 0 < n <= 1000, got ${s.portalRatePerSec}`);
  int(s.portalBurst, 'portalBurst', 1, 1000);
  int(s.queueAgeAlarmSec, 'queueAgeAlarmSec', 60, 1_209_600);
  int(s.fallbackAlarmCount, 'fallbackAlarmCount', 1, 100_000);
  int(s.escalationAlarmCount, 'escalationAlarmCount', 1, 100_000);
  if (!(s.replySuccessAlarmPercent > 0 && s.replySuccessAlarmPercent <= 100)) problems.push(`replySuccessAlarmPercent: expected 0 < n <= 100, got ${s.replySuccessAlarmPercent}`);
  if (!(s.botLatencyAlarmMs > 0)) problems.push(`botLatencyAlarmMs: expected > 0, got ${s.botLatencyAlarmMs}`);
  for (const [k, v] of Object.entries(s.environment)) {
    if (typeof v !== 'string') problems.push(`environment.${k}: expected a string value, got ${JSON.stringify(v)}`);
  }
  if (problems.length > 0) throw new Error(`olbridge settings have ${problems.length} problem(s):\n  - ${problems.join('\n  - ')}`);
  return s;
}

/** Whether the functions' environment names a dialog the canary can write to. */
function canaryDialogNamed(environment: Readonly<Record<string, string>>): boolean {
  return Boolean(environment.B24_BOT_ID || environment.OLBRIDGE_CANARY_DIALOG);
}

/** Context keys, each the name of a setting; numbers and lists may be given as strings (`-c`). */
export function settingsFromContext(get: (key: string) => unknown): SettingsInput {
  const str = (k: string): string | undefined => {
    const v = get(k);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const num = (k: string): number | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (Number.isNaN(n)) throw new Error(`context ${k}: expected a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const bool = (k: string): boolean | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw new Error(`context ${k}: expected true or false, got ${JSON.stringify(v)}`);
    return v === 'true';
  };
  const list = (k: string): string[] | undefined => {
    const v = get(k);
    if (v === undefined || v === null || v === '') return undefined;
    if (Array.isArray(v)) return v.map(String);
    return String(v).split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  };
  const object = (k: string): Record<string, string> | undefined => {
    const v = get(k);
    if (v === undefined || v === null || v === '') return undefined;
    const o = typeof v === 'string' ? JSON.parse(v) : v;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error(`context ${k}: expected a JSON object of strings`);
    return o as Record<string, string>;
  };
  const memory = {
    receiver: num('receiverMemoryMb'),
    worker: num('workerMemoryMb'),
    poller: num('pollerMemoryMb'),
    rotator: num('rotatorMemoryMb'),
  };
  const input: Record<string, unknown> = {
    stage: str('stage'),
    production: bool('production'),
    namePrefix: str('namePrefix'),
    secretName: str('secretName'),
    lambdaDir: str('lambdaDir'),
    architecture: str('architecture') as Arch | undefined,
    memoryMb: Object.fromEntries(Object.entries(memory).filter(([, v]) => v !== undefined)),
    botTimeoutSec: num('botTimeoutSec'),
    workerBatchSize: num('workerBatchSize'),
    workerMaxConcurrency: num('workerMaxConcurrency'),
    poller: bool('poller'),
    pollerRateMinutes: num('pollerRateMinutes'),
    pollerSilenceMinutes: num('pollerSilenceMinutes'),
    canary: bool('canary'),
    canaryRateMinutes: num('canaryRateMinutes'),
    logRetentionDays: num('logRetentionDays'),
    alarmEmail: str('alarmEmail'),
    allowedCidrs: list('allowedCidrs'),
    apiRateLimit: num('apiRateLimit'),
    apiBurstLimit: num('apiBurstLimit'),
    portalRatePerSec: num('portalRatePerSec'),
    portalBurst: num('portalBurst'),
    environment: object('environment'),
    queueAgeAlarmSec: num('queueAgeAlarmSec'),
    fallbackAlarmCount: num('fallbackAlarmCount'),
    escalationAlarmCount: num('escalationAlarmCount'),
    replySuccessAlarmPercent: num('replySuccessAlarmPercent'),
    botLatencyAlarmMs: num('botLatencyAlarmMs'),
  };
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as SettingsInput;
}
