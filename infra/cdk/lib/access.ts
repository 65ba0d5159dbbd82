// Least privilege, per function: the exact API calls each one makes (read from the adapters in
// crates/aws and the use cases in crates/core), on the one resource it makes them on. No managed
// policies, no `grantReadWriteData` (which adds Scan, the batch calls and DescribeTable), no `*`
// resource. docs/deploy.md ("What each function may do") says the same in a table.

import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';

/** A function reads the secret: the current value, and the version labels (to find AWSPREVIOUS). */
export const SECRET_READ = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];
/** The rotator's four steps (docs/rotation.md); no GetRandomPassword: the key comes from its own CSPRNG. */
export const SECRET_ROTATE = [...SECRET_READ, 'secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'];
/** Single-item calls and Query: what the stores in crates/aws/src/dynamo make. No Scan, no batches. */
export const TABLE_READ_WRITE = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query'];

/** The role of one function: it may write its own log group and nothing else until granted. */
export function functionRole(scope: import('constructs').Construct, id: string, logGroup: logs.ILogGroup): iam.Role {
  const role = new iam.Role(scope, id, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: 'olbridge function role (least privilege; see docs/deploy.md)',
  });
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'OwnLogGroup',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      // The group's ARN ends in `:*`, which covers its log streams (named per instance).
      resources: [logGroup.logGroupArn],
    }),
  );
  return role;
}

export function readSecret(role: iam.IRole, secret: secretsmanager.ISecret): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'ReadSecret', actions: SECRET_READ, resources: [secret.secretArn] }));
}

/**
 * The receiver's table access, by item kind (docs/aws-table.md), with `dynamodb:LeadingKeys` (the
 * partition key of every item a call touches) so a compromised receiver — the only function
 * reachable from the internet — cannot read or change profiles, history or the turn log:
 * - `key#*` (claims): PutItem to admit an event, DeleteItem to take the admission back when the
 *   enqueue fails (`unadmit`, a conditional delete of a queued claim only);
 * - `meta#*` (named values): GetItem and PutItem for the portal's pinned member id;
 * - `chat#*` (a chat's mode and history): PutItem only, with no values returned, to record that an
 *   operator wrote in a chat (`set_human`); it can never read a chat's history.
 */
export function receiverTable(role: iam.IRole, table: dynamodb.ITable): void {
  const only = (prefix: string) => ({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${prefix}*`] } });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ sid: 'Claims', actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'], resources: [table.tableArn], conditions: only('key#') }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ sid: 'NamedValues', actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resources: [table.tableArn], conditions: only('meta#') }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ChatModes',
      actions: ['dynamodb:PutItem'],
      resources: [table.tableArn],
      conditions: { ...only('chat#'), StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' } },
    }),
  );
}

/** The worker and the poller: every item kind, single-item calls and Query only. */
export function tableReadWrite(role: iam.IRole, table: dynamodb.ITable): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'Table', actions: TABLE_READ_WRITE, resources: [table.tableArn] }));
}

export function sendToQueue(role: iam.IRole, queue: sqs.IQueue): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'SendJobs', actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
}

/** The poller's health invocation reads the queue's depth (the deep health check's `queue`). */
export function readQueueAttributes(role: iam.IRole, queue: sqs.IQueue): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'QueueDepth', actions: ['sqs:GetQueueAttributes'], resources: [queue.queueArn] }));
}

export function rotateSecret(role: iam.IRole, secret: secretsmanager.ISecret): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'RotateSecret', actions: SECRET_ROTATE, resources: [secret.secretArn] }));
}
