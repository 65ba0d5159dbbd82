// The project's single sources of truth, read (never copied): infra/resources.json (the table, the
// queues, the secret's keys), infra/functions.json (what each function reads, generated from
// crates/core/src/deployment.rs) and infra/metrics.json (the metric catalogue, generated from
// crates/core/src/metrics.rs). Each file is checked for the fields the stack uses, so a renamed
// field fails at synth with the file and the field named, not as an `undefined` deep in a template.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface KeySpec {
  readonly name: string;
  readonly type: 'S' | 'N' | 'B';
}

export interface Resources {
  readonly table: {
    readonly partitionKey: KeySpec;
    readonly sortKey?: KeySpec;
    readonly ttlAttribute: string;
    readonly billingMode: 'PAY_PER_REQUEST';
  };
  readonly queue: {
    readonly fifo: boolean;
    readonly contentBasedDeduplication: boolean;
    readonly deduplicationScope: 'messageGroup' | 'queue';
    readonly fifoThroughputLimit: 'perMessageGroupId' | 'perQueue';
    readonly workerTimeoutSeconds: number;
    readonly visibilityTimeoutSeconds: number;
    readonly messageRetentionSeconds: number;
    readonly maxReceiveCount: number;
  };
  readonly deadLetterQueue: {
    readonly fifo: boolean;
    readonly messageRetentionSeconds: number;
  };
  readonly secret: { readonly keys: readonly string[] };
}

export type VarOrigin = 'env' | 'secret';

export interface FunctionVars {
  readonly name: string;
  readonly vars: readonly { readonly name: string; readonly from: VarOrigin }[];
}

export interface FunctionsSpec {
  readonly functions: readonly FunctionVars[];
}

export interface MetricDef {
  readonly name: string;
  readonly unit: string;
  /** Each set of dimension names the metric is published with (`[]`: no dimensions). */
  readonly dimensionSets: readonly (readonly string[])[];
  /** The closed set of values of a dimension, where the catalogue lists one. */
  readonly dimensionValues: Readonly<Record<string, readonly string[]>>;
  /** The function that emits it (`receiver`, `worker`, ...), when the catalogue says. */
  readonly emitter?: string;
  /** False for metrics the catalogue reserves but no function emits yet. */
  readonly emitted: boolean;
}

export interface MetricsSpec {
  readonly namespace: string;
  readonly metrics: readonly MetricDef[];
}

/** Everything the stack reads from infra/. */
export interface Spec {
  readonly resources: Resources;
  readonly functions: FunctionsSpec;
  readonly metrics: MetricsSpec;
}

/** infra/ as seen from this package (infra/cdk, or infra/cdk/dist once compiled). */
export function defaultInfraDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'resources.json')) && fs.existsSync(path.join(dir, 'cdk'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`infra/resources.json not found above ${__dirname}`);
}

class Checker {
  constructor(private readonly file: string) {}

  fail(field: string, what: string): never {
    throw new Error(`${this.file}: ${field}: ${what}`);
  }

  obj(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'expected an object');
    return v as Record<string, unknown>;
  }

  str(v: unknown, field: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(field, 'expected a non-empty string');
    return v;
  }

  num(v: unknown, field: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.fail(field, 'expected a positive integer');
    return v;
  }

  bool(v: unknown, field: string): boolean {
    if (typeof v !== 'boolean') this.fail(field, 'expected true or false');
    return v;
  }

  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
    if (!allowed.includes(v as T)) this.fail(field, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  arr(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, 'expected an array');
    return v;
  }

  strings(v: unknown, field: string): string[] {
    return this.arr(v, field).map((x, i) => this.str(x, `${field}[${i}]`));
  }
}

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new Error(`${file} not found`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
}

export function parseResources(raw: unknown, file = 'infra/resources.json'): Resources {
  const c = new Checker(file);
  const root = c.obj(raw, '(root)');
  const table = c.obj(root.table, 'table');
  const key = (v: unknown, field: string): KeySpec => {
    const k = c.obj(v, field);
    return { name: c.str(k.name, `${field}.name`), type: c.oneOf(k.type, `${field}.type`, ['S', 'N', 'B'] as const) };
  };
  const queue = c.obj(root.queue, 'queue');
  const dlq = c.obj(root.deadLetterQueue, 'deadLetterQueue');
  const secret = c.obj(root.secret, 'secret');
  const resources: Resources = {
    table: {
      partitionKey: key(table.partitionKey, 'table.partitionKey'),
      sortKey: table.sortKey === undefined ? undefined : key(table.sortKey, 'table.sortKey'),
      ttlAttribute: c.str(table.ttlAttribute, 'table.ttlAttribute'),
      billingMode: c.oneOf(table.billingMode, 'table.billingMode', ['PAY_PER_REQUEST'] as const),
    },
    queue: {
      fifo: c.bool(queue.fifo, 'queue.fifo'),
      contentBasedDeduplication: c.bool(queue.contentBasedDeduplication, 'queue.contentBasedDeduplication'),
      deduplicationScope: c.oneOf(queue.deduplicationScope, 'queue.deduplicationScope', ['messageGroup', 'queue'] as const),
      fifoThroughputLimit: c.oneOf(queue.fifoThroughputLimit, 'queue.fifoThroughputLimit', ['perMessageGroupId', 'perQueue'] as const),
      workerTimeoutSeconds: c.num(queue.workerTimeoutSeconds, 'queue.workerTimeoutSeconds'),
      visibilityTimeoutSeconds: c.num(queue.visibilityTimeoutSeconds, 'queue.visibilityTimeoutSeconds'),
      messageRetentionSeconds: c.num(queue.messageRetentionSeconds, 'queue.messageRetentionSeconds'),
      maxReceiveCount: c.num(queue.maxReceiveCount, 'queue.maxReceiveCount'),
    },
    deadLetterQueue: {
      fifo: c.bool(dlq.fifo, 'deadLetterQueue.fifo'),
      messageRetentionSeconds: c.num(dlq.messageRetentionSeconds, 'deadLetterQueue.messageRetentionSeconds'),
    },
    secret: { keys: c.strings(secret.keys, 'secret.keys') },
  };
  if (!resources.queue.fifo) c.fail('queue.fifo', 'the worker relies on FIFO order per chat; a standard queue is not supported');
  if (resources.deadLetterQueue.fifo !== resources.queue.fifo) c.fail('deadLetterQueue.fifo', 'the dead-letter queue of a FIFO queue must be FIFO');
  return resources;
}

export function parseFunctions(raw: unknown, file = 'infra/functions.json'): FunctionsSpec {
  const c = new Checker(file);
  const root = c.obj(raw, '(root)');
  const functions = c.arr(root.functions, 'functions').map((f, i) => {
    const o = c.obj(f, `functions[${i}]`);
    return {
      name: c.str(o.name, `functions[${i}].name`),
      vars: c.arr(o.vars, `functions[${i}].vars`).map((v, j) => {
        const field = `functions[${i}].vars[${j}]`;
        const vo = c.obj(v, field);
        return { name: c.str(vo.name, `${field}.name`), from: c.oneOf(vo.from, `${field}.from`, ['env', 'secret'] as const) };
      }),
    };
  });
  return { functions };
}

/**
 * The metric catalogue. The generated file spells dimension sets `dimension_sets` and lists closed
 * value sets in `dimension_values`; the shorter `dimensions` spelling is accepted too.
 */
export function parseMetrics(raw: unknown, file = 'infra/metrics.json'): MetricsSpec {
  const c = new Checker(file);
  const root = c.obj(raw, '(root)');
  const metrics = c.arr(root.metrics, 'metrics').map((m, i): MetricDef => {
    const field = `metrics[${i}]`;
    const o = c.obj(m, field);
    const dimensionSets = c.arr(o.dimension_sets ?? o.dimensions ?? [[]], `${field}.dimension_sets`).map((s, j) => c.strings(s, `${field}.dimension_sets[${j}]`));
    const valuesRaw = c.obj(o.dimension_values ?? {}, `${field}.dimension_values`);
    const dimensionValues: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(valuesRaw)) dimensionValues[k] = c.strings(v, `${field}.dimension_values.${k}`);
    return {
      name: c.str(o.name, `${field}.name`),
      unit: c.str(o.unit, `${field}.unit`),
      dimensionSets,
      dimensionValues,
      emitter: o.emitter === undefined ? undefined : c.str(o.emitter, `${field}.emitter`),
      emitted: o.emitted === undefined ? true : c.bool(o.emitted, `${field}.emitted`),
    };
  });
  const names = new Set<string>();
  for (const m of metrics) {
    if (names.has(m.name)) c.fail('metrics', `${m.name} is defined twice`);
    names.add(m.name);
  }
  return { namespace: c.str(root.namespace, 'namespace'), metrics };
}

/** Reads the three files from `infraDir` (default: this repository's infra/). */
export function loadSpec(infraDir: string = defaultInfraDir()): Spec {
  const file = (name: string) => path.join(infraDir, name);
  return {
    resources: parseResources(readJson(file('resources.json')), file('resources.json')),
    functions: parseFunctions(readJson(file('functions.json')), file('functions.json')),
    metrics: parseMetrics(readJson(file('metrics.json')), file('metrics.json')),
  };
}
