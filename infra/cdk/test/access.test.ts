// Least privilege: each function may make exactly the calls it makes, on the one resource each.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { actionsOf, defaults, resources, statementsOf } from './support';

const ROTATION = ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage', 'secretsmanager:RotateSecret', 'secretsmanager:GetRandomPassword'];
const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];

describe('IAM', () => {
  test('each function has exactly its own actions', () => {
    const { template } = defaults();
    const expected: Record<string, string[]> = {
      receiver: [...LOGS, 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'sqs:SendMessage', 'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      worker: [
        ...LOGS,
        'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query',
        'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl',
        'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret',
      ],
      poller: [
        ...LOGS,
        'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query',
        'sqs:SendMessage', 'sqs:GetQueueAttributes', 'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret',
      ],
      rotator: [...LOGS, 'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret', 'secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'],
    };
    for (const [name, actions] of Object.entries(expected)) {
      const { statements, managed } = statementsOf(template, name);
      assert.deepEqual(actionsOf(statements), [...new Set(actions)].sort(), `${name}'s actions`);
      assert.deepEqual(managed, [], `${name} has no managed policy`);
      for (const s of statements) {
        assert.equal(s.Effect, 'Allow');
        assert.notEqual(s.Resource, '*', `${name}: no statement on *`);
        assert.ok(!JSON.stringify(s.Action).includes('*'), `${name}: no wildcard action`);
      }
    }
  });

  test('the receiver cannot consume the queue, write the secret, scan or query the table', () => {
    const actions = actionsOf(statementsOf(defaults().template, 'receiver').statements);
    for (const a of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'secretsmanager:PutSecretValue', 'dynamodb:Scan', 'dynamodb:Query', 'dynamodb:UpdateItem', ...ROTATION]) {
      assert.ok(!actions.includes(a), `receiver must not have ${a}`);
    }
  });

  test("every receiver table statement is limited to its item kinds by dynamodb:LeadingKeys, and chat items are write-only", () => {
    const table = (s: { Action: string | string[] }) => [s.Action].flat().some((a) => a.startsWith('dynamodb:'));
    const statements = statementsOf(defaults().template, 'receiver').statements.filter(table);
    assert.equal(statements.length, 3);
    const prefixes = statements.map((s) => {
      const keys = s.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'] as string[] | undefined;
      assert.ok(keys !== undefined && keys.length === 1 && keys[0].endsWith('#*'), `statement ${s.Sid} has a LeadingKeys condition`);
      return keys[0];
    });
    assert.deepEqual(prefixes.sort(), ['chat#*', 'key#*', 'meta#*']);
    const chat = statements.find((s) => JSON.stringify(s.Condition).includes('chat#*'))!;
    assert.deepEqual([chat.Action].flat(), ['dynamodb:PutItem']);
    assert.deepEqual(chat.Condition?.StringEqualsIfExists, { 'dynamodb:ReturnValues': 'NONE' });
    const profiles = statements.filter((s) => JSON.stringify(s.Condition).includes('phone#'));
    assert.equal(profiles.length, 0, 'no access to profiles');
  });

  test('the worker and the poller cannot rotate or write the secret', () => {
    for (const name of ['worker', 'poller']) {
      const actions = actionsOf(statementsOf(defaults().template, name).statements);
      for (const a of ROTATION) assert.ok(!actions.includes(a), `${name} must not have ${a}`);
    }
  });

  test('secret permissions name the one secret; table permissions the one table', () => {
    const { template } = defaults();
    const [secretId] = Object.keys(resources(template, 'AWS::SecretsManager::Secret'));
    const [tableId] = Object.keys(resources(template, 'AWS::DynamoDB::Table'));
    for (const name of ['receiver', 'worker', 'poller', 'rotator']) {
      for (const s of statementsOf(template, name).statements) {
        const actions = [s.Action].flat();
        if (actions.some((a) => a.startsWith('secretsmanager:'))) assert.deepEqual(s.Resource, { Ref: secretId }, `${name}: ${s.Sid}`);
        if (actions.some((a) => a.startsWith('dynamodb:'))) assert.deepEqual(s.Resource, { 'Fn::GetAtt': [tableId, 'Arn'] }, `${name}: ${s.Sid}`);
      }
    }
  });
});
