// The table, the queues and the secret are infra/resources.json's, and the timings hold together.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { Match } from 'aws-cdk-lib/assertions';

import { resolveSettings } from '../lib/settings';
import { checkTimings } from '../lib/stack';
import { actionsOf, build, CDK_DIR, defaults, lambdaFn, REPO_DIR, resources, spec, specWith, statementsOf } from './support';

const res = spec.resources;

describe('table', () => {
  test("keys, TTL attribute and billing are infra/resources.json's; point-in-time recovery is on", () => {
    const keys = [{ AttributeName: res.table.partitionKey.name, KeyType: 'HASH' }];
    const attrs = [{ AttributeName: res.table.partitionKey.name, AttributeType: res.table.partitionKey.type }];
    if (res.table.sortKey) {
      keys.push({ AttributeName: res.table.sortKey.name, KeyType: 'RANGE' });
      attrs.push({ AttributeName: res.table.sortKey.name, AttributeType: res.table.sortKey.type });
    }
    const tables = Object.values(resources(defaults().template, 'AWS::DynamoDB::Table'));
    assert.equal(tables.length, 1);
    const p = tables[0].Properties;
    assert.deepEqual(p.KeySchema, keys);
    assert.deepEqual(p.AttributeDefinitions, attrs);
    assert.deepEqual(p.TimeToLiveSpecification, { AttributeName: res.table.ttlAttribute, Enabled: true });
    assert.equal(p.BillingMode, res.table.billingMode);
    assert.deepEqual(p.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    assert.equal(p.GlobalSecondaryIndexes, undefined, 'no indexes');
  });

  test('production stages get deletion protection and keep the table, the secret and the logs', () => {
    const { template } = build({ stage: 'prod' });
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain', Properties: Match.objectLike({ DeletionProtectionEnabled: true }) });
    template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain' });
    template.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
    defaults().template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', Properties: Match.objectLike({ DeletionProtectionEnabled: false }) });
  });
});

describe('queues', () => {
  test("the queue is infra/resources.json's FIFO queue, with its FIFO dead-letter queue", () => {
    const { template } = defaults();
    const queues = resources(template, 'AWS::SQS::Queue');
    const [dlqId, dlq] = Object.entries(queues).find(([, q]) => q.Properties.RedrivePolicy === undefined)!;
    const [, q] = Object.entries(queues).find(([, q]) => q.Properties.RedrivePolicy !== undefined)!;
    assert.equal(Object.keys(queues).length, 2);
    assert.deepEqual(
      {
        fifo: q.Properties.FifoQueue,
        contentBasedDeduplication: q.Properties.ContentBasedDeduplication,
        deduplicationScope: q.Properties.DeduplicationScope,
        fifoThroughputLimit: q.Properties.FifoThroughputLimit,
        visibilityTimeoutSeconds: q.Properties.VisibilityTimeout,
        messageRetentionSeconds: q.Properties.MessageRetentionPeriod,
        maxReceiveCount: q.Properties.RedrivePolicy.maxReceiveCount,
      },
      {
        fifo: res.queue.fifo,
        contentBasedDeduplication: res.queue.contentBasedDeduplication,
        deduplicationScope: res.queue.deduplicationScope,
        fifoThroughputLimit: res.queue.fifoThroughputLimit,
        visibilityTimeoutSeconds: res.queue.visibilityTimeoutSeconds,
        messageRetentionSeconds: res.queue.messageRetentionSeconds,
        maxReceiveCount: res.queue.maxReceiveCount,
      },
    );
    assert.deepEqual(q.Properties.RedrivePolicy.deadLetterTargetArn, { 'Fn::GetAtt': [dlqId, 'Arn'] });
    assert.equal(dlq.Properties.FifoQueue, res.deadLetterQueue.fifo);
    assert.equal(dlq.Properties.MessageRetentionPeriod, res.deadLetterQueue.messageRetentionSeconds);
    for (const x of [q, dlq]) {
      assert.equal(x.Properties.SqsManagedSseEnabled, true, 'server-side encryption');
      assert.match(x.Properties.QueueName, /\.fifo$/);
    }
  });

  test('both queues refuse requests without TLS', () => {
    const { template } = defaults();
    const policies = Object.values(resources(template, 'AWS::SQS::QueuePolicy'));
    assert.equal(policies.length, 2);
    for (const p of policies) {
      const deny = p.Properties.PolicyDocument.Statement.find((s: any) => s.Effect === 'Deny');
      assert.deepEqual(deny.Condition, { Bool: { 'aws:SecureTransport': 'false' } });
    }
  });

  test('the worker consumes the queue with partial batch failures, the batch size and the maximum concurrency', () => {
    const { template } = build({ workerBatchSize: 5, workerMaxConcurrency: 4 });
    const worker = lambdaFn(template, 'worker');
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: worker.id },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 5,
      ScalingConfig: { MaximumConcurrency: 4 },
    });
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
  });
});

describe('timings', () => {
  test("the worker's timeout is infra/resources.json's; it exceeds the bot's; the visibility timeout is at least 6 x it", () => {
    const { template } = defaults();
    const worker = lambdaFn(template, 'worker').props;
    const [queue] = Object.values(resources(template, 'AWS::SQS::Queue')).filter((q) => q.Properties.RedrivePolicy);
    assert.equal(worker.Timeout, res.queue.workerTimeoutSeconds);
    assert.ok(worker.Timeout > Number(worker.Environment.Variables.BOT_HTTP_TIMEOUT_SEC), 'worker timeout > BOT_HTTP_TIMEOUT_SEC');
    assert.ok(queue.Properties.VisibilityTimeout >= 6 * worker.Timeout, 'visibility >= 6 x worker timeout');
  });

  test('a visibility timeout under 6 x the worker timeout, or a bot timeout not under the worker timeout, fails the synth', () => {
    const short = specWith((s) => (s.resources.queue.visibilityTimeoutSeconds = 6 * s.resources.queue.workerTimeoutSeconds - 1));
    assert.throws(() => build({}, short), /visibility timeout .* must be at least 6 x the worker's timeout/);
    assert.throws(() => build({ botTimeoutSec: res.queue.workerTimeoutSeconds }), /must exceed one bot call/);
    const settings = resolveSettings({ botTimeoutSec: 10 }, CDK_DIR);
    assert.doesNotThrow(() => checkTimings(spec, settings));
  });

  test('the receiver answers within the HTTP API limit; the rotator has at least 60 s', () => {
    const { template } = defaults();
    assert.ok(lambdaFn(template, 'receiver').props.Timeout < 30);
    assert.ok(lambdaFn(template, 'rotator').props.Timeout >= 60);
  });
});

describe('secret and rotation', () => {
  test('the secret starts as an empty JSON object whatever infra/resources.json says, so no deploy overwrites its values', () => {
    const secretOf = (t: ReturnType<typeof defaults>['template']) => Object.values(resources(t, 'AWS::SecretsManager::Secret'))[0].Properties;
    const secret = secretOf(defaults().template);
    assert.equal(secret.SecretString, '{}');
    for (const k of res.secret.keys) assert.ok(secret.Description.includes(k), `the description names ${k}`);
    const more = specWith((s) => s.resources.secret.keys.push('NEW_KEY'));
    assert.equal(secretOf(build({}, more).template).SecretString, '{}', 'a new key does not change the value CloudFormation writes');
  });

  test('the rotator rotates it every 90 days, never at deploy time', () => {
    const { template } = defaults();
    const rotator = lambdaFn(template, 'rotator');
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationLambdaARN: { 'Fn::GetAtt': [rotator.id, 'Arn'] },
      RotationRules: { ScheduleExpression: 'rate(90 days)' },
      RotateImmediatelyOnUpdate: false,
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: { 'Fn::GetAtt': [rotator.id, 'Arn'] },
      Principal: 'secretsmanager.amazonaws.com',
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });
});

describe('functions', () => {
  test('custom runtime, bootstrap handler, JSON logs into their own log group with retention; x86_64 unless arm64 is chosen', () => {
    const { template } = defaults();
    const groups = resources(template, 'AWS::Logs::LogGroup');
    for (const name of ['receiver', 'worker', 'poller', 'rotator']) {
      const p = lambdaFn(template, name).props;
      assert.equal(p.Runtime, 'provided.al2023');
      assert.equal(p.Handler, 'bootstrap');
      assert.deepEqual(p.Architectures, ['x86_64']);
      assert.equal(p.LoggingConfig.LogFormat, 'JSON');
      assert.equal(groups[p.LoggingConfig.LogGroup.Ref].Properties.RetentionInDays, 30);
    }
    assert.deepEqual(lambdaFn(build({ architecture: 'arm64' }).template, 'worker').props.Architectures, ['arm64']);
  });

  test('the poller runs on its schedule, and can be left out', () => {
    const { template } = build({ pollerRateMinutes: 2, pollerSilenceMinutes: 6 });
    const poller = lambdaFn(template, 'poller');
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(2 minutes)',
      Targets: Match.arrayWith([Match.objectLike({ Arn: { 'Fn::GetAtt': [poller.id, 'Arn'] } })]),
    });
    const without = build({ poller: false }).template;
    assert.equal(Object.values(resources(without, 'AWS::Lambda::Function')).length, 3);
    without.resourceCountIs('AWS::Events::Rule', 0);
  });

  test('the poller: an EventBridge schedule, a run and a direct invocation at a time, no retries; table read/write, queue send and depth, the secret read-only, no bot call', () => {
    const { template } = defaults();
    const poller = lambdaFn(template, 'poller');
    assert.equal(poller.props.ReservedConcurrentExecutions, 2, 'one poll run (the lease keeps them one at a time) and one canary or health invocation');
    assert.equal(poller.props.Timeout, 60);
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: Match.arrayWith([Match.objectLike({ Arn: { 'Fn::GetAtt': [poller.id, 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0 } })]),
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: poller.id },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
    const { statements } = statementsOf(template, 'poller');
    const actions = actionsOf(statements);
    for (const a of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'sqs:SendMessage', 'secretsmanager:GetSecretValue']) {
      assert.ok(actions.includes(a), `the poller needs ${a}`);
    }
    for (const a of actions.filter((x) => x.startsWith('sqs:'))) assert.ok(['sqs:SendMessage', 'sqs:GetQueueAttributes'].includes(a), `queue: send and depth only, not ${a}`);
    for (const a of actions.filter((x) => x.startsWith('secretsmanager:'))) assert.ok(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'].includes(a), `secret: read only, not ${a}`);
    assert.ok(!actions.includes('dynamodb:Scan'), 'no table scans');
    const env = poller.props.Environment.Variables;
    assert.equal(env.BOT_HTTP_URL, '', 'the health check probes the bot with a GET (blank: the operator sets it); it never asks it');
    assert.equal(env.BOT_HTTP_TIMEOUT_SEC, undefined);
    template.resourceCountIs('AWS::Events::Rule', 1);
  });

  test('the canary: its own schedule sends {"olbridge":"canary"} to the poller, when the environment names a dialog', () => {
    const { template } = build({ environment: { B24_BOT_ID: '42' }, canaryRateMinutes: 10 });
    const poller = lambdaFn(template, 'poller');
    const rules = Object.values(resources(template, 'AWS::Events::Rule'));
    const canary = rules.find((r) => r.Properties.Name === 'olbridge-dev-canary');
    assert.ok(canary, 'a canary rule');
    assert.equal(canary.Properties.ScheduleExpression, 'rate(10 minutes)');
    const [target] = canary.Properties.Targets;
    assert.deepEqual(target.Arn, { 'Fn::GetAtt': [poller.id, 'Arn'] });
    assert.deepEqual(JSON.parse(target.Input), { olbridge: 'canary' });
    const fixture = JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'events/poller-canary.json'), 'utf8'));
    assert.deepEqual(JSON.parse(target.Input), fixture, 'the input is events/poller-canary.json');
    assert.equal(target.RetryPolicy.MaximumRetryAttempts, 0);
    // Off without a dialog, off when asked, and refused when asked for without one.
    assert.equal(Object.values(resources(build({ environment: { B24_BOT_ID: '42' }, canary: false }).template, 'AWS::Events::Rule')).length, 1);
    assert.equal(Object.values(resources(build({ environment: { B24_BOT_ID: '42', OLBRIDGE_MODE: 'operator' } }).template, 'AWS::Events::Rule')).length, 1);
    assert.throws(() => build({ canary: true }), /canary: needs a canary dialog/);
    assert.throws(() => build({ canary: true, poller: false, environment: { B24_BOT_ID: '42' } }), /the poller, which is not deployed/);
  });

  test('a missing bootstrap fails the synth with what to run', () => {
    assert.throws(() => build({ lambdaDir: '/nonexistent' }), /cargo lambda build --release/);
  });

  test('settings are checked, every problem at once', () => {
    assert.throws(
      () => resolveSettings({ architecture: 'sparc' as never, workerBatchSize: 11, logRetentionDays: 31, alarmEmail: 'nobody' }, CDK_DIR),
      (e: Error) => ['architecture', 'workerBatchSize', 'logRetentionDays', 'alarmEmail'].every((w) => e.message.includes(w)),
    );
  });
});
