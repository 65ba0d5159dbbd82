// The functions' own metrics (EMF, namespace from infra/metrics.json), as CloudWatch metric objects.
// Alarms and the dashboard get every application metric through here, so a name, a dimension or a
// dimension value that infra/metrics.json does not define fails at synth instead of producing an
// alarm that watches a metric nobody publishes (CloudWatch would accept it and stay silent).

import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';

import type { MetricDef, MetricsSpec } from './spec';

export interface CatalogueMetricOptions {
  /** Dimension values; the names must be one of the metric's dimension sets. */
  readonly dimensions?: Readonly<Record<string, string>>;
  readonly statistic?: string;
  readonly period?: Duration;
  readonly label?: string;
}

export class Catalogue {
  private readonly byName: Map<string, MetricDef>;

  constructor(private readonly spec: MetricsSpec) {
    this.byName = new Map(spec.metrics.map((m) => [m.name, m]));
  }

  get namespace(): string {
    return this.spec.namespace;
  }

  def(name: string): MetricDef {
    const m = this.byName.get(name);
    if (m === undefined) throw new Error(`metric ${name} is not in infra/metrics.json (known: ${[...this.byName.keys()].join(', ')})`);
    return m;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The closed value set of `dimension` of metric `name` (it must be listed in the catalogue). */
  values(name: string, dimension: string): readonly string[] {
    const values = this.def(name).dimensionValues[dimension];
    if (values === undefined || values.length === 0) throw new Error(`infra/metrics.json lists no values of ${name}'s dimension ${dimension}`);
    return values;
  }

  /**
   * One metric. A `Function` dimension, when the catalogue's set has one, is filled with the
   * metric's emitter unless given.
   */
  metric(name: string, options: CatalogueMetricOptions = {}): cw.Metric {
    const def = this.def(name);
    const dims: Record<string, string> = { ...options.dimensions };
    const wanted = Object.keys(dims).sort();
    const set = def.dimensionSets.find((s) => {
      const names = s.filter((d) => !(d === 'Function' && dims.Function === undefined && def.emitter !== undefined));
      return names.length === wanted.length && [...names].sort().every((d, i) => d === wanted[i]);
    });
    if (set === undefined) {
      throw new Error(`metric ${name} is not published with dimensions [${wanted.join(', ')}]; infra/metrics.json has ${JSON.stringify(def.dimensionSets)}`);
    }
    if (set.includes('Function') && dims.Function === undefined && def.emitter !== undefined) dims.Function = def.emitter;
    for (const [d, v] of Object.entries(dims)) {
      const allowed = def.dimensionValues[d];
      if (allowed !== undefined && allowed.length > 0 && !allowed.includes(v)) {
        throw new Error(`metric ${name}: ${d}=${v} is not one of infra/metrics.json's values (${allowed.join(', ')})`);
      }
    }
    return new cw.Metric({
      namespace: this.namespace,
      metricName: name,
      dimensionsMap: dims,
      statistic: options.statistic ?? 'Sum',
      period: options.period ?? Duration.minutes(5),
      label: options.label,
    });
  }

  /**
   * `Sum` of metric `name` for each listed value of `dimension`, keyed by metric-math ids `prefix0`,
   * `prefix1`, ... with the value as label.
   */
  byValue(name: string, dimension: string, prefix: string, period: Duration, values?: readonly string[]): Record<string, cw.Metric> {
    const out: Record<string, cw.Metric> = {};
    (values ?? this.values(name, dimension)).forEach((v, i) => {
      out[`${prefix}${i}`] = this.metric(name, { dimensions: { [dimension]: v }, period, label: v });
    });
    return out;
  }
}

/** `FILL(a,0)+FILL(b,0)+...`: a sum where a value nobody emitted this period counts as zero. */
export function filledSum(ids: readonly string[]): string {
  return ids.map((id) => `FILL(${id}, 0)`).join(' + ');
}
