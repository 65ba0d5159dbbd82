// Test support: the stack built offline against throw-away Lambda assets (a dummy `bootstrap` per
// function, so nothing is compiled), and readers for what the tests look at in the template.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

import { resolveSettings, type SettingsInput } from '../lib/settings';
import { loadSpec, type Spec } from '../lib/spec';
import { FUNCTION_NAMES, OlbridgeStack } from '../lib/stack';

export const CDK_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
export const REPO_DIR = path.resolve(CDK_DIR, '../..');

/** The repository's infra/*.json, as the app reads them. */
export const spec: Spec = loadSpec(path.join(REPO_DIR, 'infra'));

let assets: string | undefined;

/** A lambda directory with `olbridge-<name>/bootstrap` for every function, removed at exit. */
export function lambdaDir(): string {
  if (assets === undefined) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'olbridge-cdk-test-'));
    for (const name of FUNCTION_NAMES) {
      fs.mkdirSync(path.join(dir, `olbridge-${name}`));
      fs.writeFileSync(path.join(dir, `olbridge-${name}`, 'bootstrap'), '#!/bin/sh\necho dummy\n', { mode: 0o755 });
    }
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    assets = dir;
  }
  return assets;
}

export interface Built {
  readonly app: App;
  readonly stack: OlbridgeStack;
  readonly template: Template;
}

export function build(input: SettingsInput = {}, withSpec: Spec = spec): Built {
  const app = new App();
  const settings = resolveSettings({ lambdaDir: lambdaDir(), ...input }, CDK_DIR);
  const stack = new OlbridgeStack(app, `Olbridge-${settings.stage}`, { spec: withSpec, settings });
  return { app, stack, template: Template.fromStack(stack) };
}

let defaultBuild: Built | undefined;
/** The stack with default settings, built once per test file. */
export function defaults(): Built {
  defaultBuild ??= build();
  return defaultBuild;
}

/** `spec` with `change` applied to a deep copy. */
export function specWith(change: (s: { resources: any; functions: any; metrics: any }) => void): Spec {
  const copy = JSON.parse(JSON.stringify(spec));
  change(copy);
  return copy;
}

type Resource = { Type: string; Properties: any; [k: string]: any };

export function resources(t: Template, type: string): Record<string, Resource> {
  return t.findResources(type) as Record<string, Resource>;
}

/** The logical id and properties of the function named `olbridge-dev-<name>` (or with `prefix`). */
export function lambdaFn(t: Template, name: string, prefix = 'olbridge-dev'): { id: string; props: any } {
  const found = Object.entries(resources(t, 'AWS::Lambda::Function')).filter(([, r]) => r.Properties.FunctionName === `${prefix}-${name}`);
  if (found.length !== 1) throw new Error(`function ${prefix}-${name}: found ${found.length}`);
  return { id: found[0][0], props: found[0][1].Properties };
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Sid?: string;
}

/** Every policy statement that applies to function `name`'s role (inline, attached, managed). */
export function statementsOf(t: Template, name: string): { statements: Statement[]; managed: unknown[] } {
  const fn = lambdaFn(t, name);
  const roleId = fn.props.Role['Fn::GetAtt'][0] as string;
  const role = resources(t, 'AWS::IAM::Role')[roleId];
  const statements: Statement[] = [];
  for (const p of role.Properties.Policies ?? []) statements.push(...p.PolicyDocument.Statement);
  for (const p of Object.values(resources(t, 'AWS::IAM::Policy'))) {
    if ((p.Properties.Roles ?? []).some((r: any) => r.Ref === roleId)) statements.push(...p.Properties.PolicyDocument.Statement);
  }
  return { statements, managed: role.Properties.ManagedPolicyArns ?? [] };
}

export function actionsOf(statements: readonly Statement[]): string[] {
  return [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])))].sort();
}

/** A metric an alarm or the dashboard refers to. */
export interface UsedMetric {
  readonly where: string;
  readonly namespace: string;
  readonly name: string;
  readonly dimensions: Record<string, string>;
}

/** Every metric the alarms use (plain and metric-math). */
export function alarmMetrics(t: Template): UsedMetric[] {
  const out: UsedMetric[] = [];
  const dims = (ds: any[] | undefined) => Object.fromEntries((ds ?? []).map((d) => [d.Name, typeof d.Value === 'string' ? d.Value : '<token>']));
  for (const [id, a] of Object.entries(resources(t, 'AWS::CloudWatch::Alarm'))) {
    const p = a.Properties;
    if (p.MetricName !== undefined) out.push({ where: id, namespace: p.Namespace, name: p.MetricName, dimensions: dims(p.Dimensions) });
    for (const m of p.Metrics ?? []) {
      const metric = m.MetricStat?.Metric;
      if (metric !== undefined) out.push({ where: id, namespace: metric.Namespace, name: metric.MetricName, dimensions: dims(metric.Dimensions) });
    }
  }
  return out;
}

/** The dashboard's body as JSON (CloudFormation tokens replaced by a placeholder). */
export function dashboardBody(t: Template): any {
  const [d] = Object.values(resources(t, 'AWS::CloudWatch::Dashboard'));
  const body = d.Properties.DashboardBody;
  const text = typeof body === 'string' ? body : (body['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
  return JSON.parse(text);
}

/** Every metric the dashboard graphs, including those a SEARCH expression names. */
export function dashboardMetrics(t: Template): UsedMetric[] {
  const out: UsedMetric[] = [];
  for (const w of dashboardBody(t).widgets) {
    const title = w.properties?.title ?? w.type;
    for (const m of w.properties?.metrics ?? []) {
      const last = m[m.length - 1];
      const expression: string | undefined = typeof last === 'object' ? last.expression : undefined;
      if (expression !== undefined) {
        // SEARCH('{Namespace,Dim1,Dim2} MetricName="Name"', ...): every value of those dimensions.
        for (const s of expression.matchAll(/SEARCH\('\{([^}]+)\} MetricName="([^"]+)"/g)) {
          const [namespace, ...dims] = s[1].split(',');
          out.push({ where: title, namespace, name: s[2], dimensions: Object.fromEntries(dims.map((d) => [d, '*'])) });
        }
        continue;
      }
      const parts = m.filter((x: unknown) => typeof x === 'string');
      const dimensions: Record<string, string> = {};
      for (let i = 2; i + 1 < parts.length; i += 2) dimensions[parts[i]] = parts[i + 1];
      out.push({ where: title, namespace: parts[0], name: parts[1], dimensions });
    }
  }
  return out;
}
