// Alarms and the dashboard: every application metric they use is one infra/metrics.json defines,
// every alarm notifies the topic and is documented in docs/deploy.md.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { Match } from 'aws-cdk-lib/assertions';

import { Catalogue } from '../lib/catalogue';
import { alarmMetrics, build, dashboardBody, dashboardMetrics, defaults, lambdaFn, REPO_DIR, resources, spec, type UsedMetric } from './support';

const catalogue = new Catalogue(spec.metrics);

function assertInCatalogue(used: readonly UsedMetric[]): void {
  const own = used.filter((m) => m.namespace === spec.metrics.namespace);
  assert.ok(own.length > 0, 'some application metrics are used');
  for (const m of own) {
    assert.ok(catalogue.has(m.name), `${m.where}: ${m.name} is not in infra/metrics.json`);
    const def = catalogue.def(m.name);
    const names = Object.keys(m.dimensions).sort();
    assert.ok(
      def.dimensionSets.some((s) => [...s].sort().join() === names.join()),
      `${m.where}: ${m.name} is not published with dimensions [${names}] (infra/metrics.json: ${JSON.stringify(def.dimensionSets)})`,
    );
    for (const [d, v] of Object.entries(m.dimensions)) {
      const values = def.dimensionValues[d];
      if (values && values.length > 0 && v !== '*') assert.ok(values.includes(v), `${m.where}: ${m.name} ${d}=${v} is not a listed value`);
    }
  }
  for (const m of used.filter((m) => m.namespace !== spec.metrics.namespace)) {
    assert.match(m.namespace, /^AWS\//, `${m.where}: ${m.name} is an AWS metric or one of ours`);
  }
}

const ALARMS = [
  'receiver-errors', 'receiver-throttles', 'worker-errors', 'worker-throttles', 'poller-errors', 'poller-throttles',
  'rotator-errors', 'rotator-throttles', 'worker-duration', 'queue-age', 'dead-letters', 'api-5xx', 'fallbacks',
  'escalations', 'bot-latency', 'reply-success', 'rotation-due', 'rotation-failed', 'poller-silent', 'poller-failed',
];

describe('alarms', () => {
  test('every metric an alarm uses is in infra/metrics.json (or an AWS metric)', () => {
    assertInCatalogue(alarmMetrics(defaults().template));
  });

  test('the alarm set, each notifying the topic on alarm and on recovery', () => {
    const { template } = defaults();
    const [topicId] = Object.keys(resources(template, 'AWS::SNS::Topic'));
    const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm'));
    assert.deepEqual(alarms.map((a) => a.Properties.AlarmName.replace(/^olbridge-dev-/, '')).sort(), [...ALARMS].sort());
    for (const a of alarms) {
      assert.deepEqual(a.Properties.AlarmActions, [{ Ref: topicId }], a.Properties.AlarmName);
      assert.deepEqual(a.Properties.OKActions, [{ Ref: topicId }], a.Properties.AlarmName);
    }
  });

  test('every alarm is explained in docs/deploy.md', () => {
    const doc = fs.readFileSync(path.join(REPO_DIR, 'docs/deploy.md'), 'utf8');
    for (const a of ALARMS) assert.ok(doc.includes(`\`${a}\``), `docs/deploy.md explains ${a}`);
  });

  test('specific alarms watch what they say', () => {
    const { template } = defaults();
    const alarm = (name: string) => Object.values(resources(template, 'AWS::CloudWatch::Alarm')).find((a) => a.Properties.AlarmName === `olbridge-dev-${name}`)!.Properties;
    const worker = lambdaFn(template, 'worker').props;
    const duration = alarm('worker-duration');
    assert.equal(duration.ExtendedStatistic, 'p95');
    assert.ok(duration.Threshold < worker.Timeout * 1000 && duration.Threshold >= worker.Timeout * 500, 'near the timeout');
    assert.equal(alarm('dead-letters').MetricName, 'ApproximateNumberOfMessagesVisible');
    assert.equal(alarm('dead-letters').Threshold, 1);
    assert.equal(alarm('queue-age').MetricName, 'ApproximateAgeOfOldestMessage');
    assert.equal(alarm('api-5xx').MetricName, '5xx');
    assert.equal(alarm('rotation-due').MetricName, 'RotationNothingStaged');
    assert.equal(alarm('bot-latency').ExtendedStatistic, 'p95');
    const silent = alarm('poller-silent');
    assert.equal(silent.MetricName, 'Invocations');
    assert.equal(silent.TreatMissingData, 'breaching', 'no data = the poller did not run');
    assert.equal(silent.ComparisonOperator, 'LessThanThreshold');
    const success = alarm('reply-success');
    const expression = success.Metrics.find((m: any) => m.Expression).Expression as string;
    assert.match(expression, /^IF\(/);
    const outcomes = success.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric.Dimensions[0].Value).sort();
    assert.deepEqual(outcomes, ['answered', 'cached', 'fallback', 'gave_up', 'handed_off', 'silent'], 'rate_limited, window_closed and ignored are not answerable');
  });

  test('with the canary on, canary-failed sums CanaryFailed over 15 minutes, and is explained in docs/deploy.md', () => {
    const { template } = build({ environment: { B24_BOT_ID: '42' } });
    const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const canary = alarms.find((a) => a.AlarmName === 'olbridge-dev-canary-failed');
    assert.ok(canary, 'a canary-failed alarm');
    assert.equal(canary.MetricName, 'CanaryFailed');
    assert.equal(canary.Namespace, spec.metrics.namespace);
    assert.equal(canary.Statistic, 'Sum');
    assert.equal(canary.Period, 900);
    assert.equal(canary.Threshold, 2);
    assertInCatalogue(alarmMetrics(template));
    assert.ok(fs.readFileSync(path.join(REPO_DIR, 'docs/deploy.md'), 'utf8').includes('`canary-failed`'));
    assert.equal(alarms.length, ALARMS.length + 1);
  });

  test('the topic takes TLS only, and an e-mail subscription when an address is given', () => {
    const { template } = build({ alarmEmail: 'ops@example.com' });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    defaults().template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  test('a metric the catalogue does not define, or a dimension value it does not list, is refused', () => {
    assert.throws(() => catalogue.metric('PollerRuns'), /PollerRuns is not in infra\/metrics.json/);
    assert.throws(() => catalogue.metric('Turns', { dimensions: { Outcome: 'answred' } }), /Outcome=answred is not one of/);
    assert.throws(() => catalogue.metric('Turns'), /not published with dimensions \[\]/);
  });
});

describe('dashboard', () => {
  test('every metric the dashboard uses is in infra/metrics.json (or an AWS metric)', () => {
    assertInCatalogue(dashboardMetrics(defaults().template));
  });

  test('it shows the delivery KPIs and the alarms', () => {
    const widgets = dashboardBody(defaults().template).widgets;
    const titles = widgets.map((w: any) => w.properties?.title).filter(Boolean);
    for (const t of [
      'Latency: end to end (ms)', 'Latency: bridge overhead and bot (ms)', 'Reply success rate (%)', 'Error rate (%)',
      'Escalations by reason', 'Queue depth', 'REST calls per turn', 'Alarms',
    ]) {
      assert.ok(titles.includes(t), `a "${t}" widget`);
    }
    const alarmWidget = widgets.find((w: any) => w.type === 'alarm');
    assert.equal(alarmWidget.properties.alarms.length, ALARMS.length);
    const used = dashboardMetrics(defaults().template).map((m) => m.name);
    for (const m of ['EndToEndLatency', 'BridgeOverhead', 'Turns', 'Escalations', 'TurnRestCalls', 'ApproximateAgeOfOldestMessage']) {
      assert.ok(used.includes(m), `the dashboard graphs ${m}`);
    }
  });
});
