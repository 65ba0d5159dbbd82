// The olbridge AWS deployment: an HTTP API in front of the receiver, an SQS FIFO queue (and its FIFO
// dead-letter queue) feeding the worker, a scheduled reconciliation poller, the one DynamoDB table,
// the one secret with its quarterly rotation, and the alarms and dashboard (monitoring.ts).
//
// Definitions come from infra/*.json (spec.ts), choices from the settings (settings.ts); the Lambda
// code is whatever `cargo lambda build --release` left in the lambda directory: synth builds
// nothing, so it runs offline in seconds.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, type StackProps } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

import * as access from './access';
import { checkEnvironment, environmentFor, type ResourceValues } from './environment';
import { Monitoring } from './monitoring';
import { acknowledgeFindings } from './nag';
import type { Settings } from './settings';
import type { Spec } from './spec';

export const FUNCTION_NAMES = ['receiver', 'worker', 'poller', 'rotator'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** Timeouts the stack chooses (the worker's comes from infra/resources.json). */
export const RECEIVER_TIMEOUT_SEC = 10; // the HTTP API gives up after 30 s; Bitrix24 wants an answer at once
export const POLLER_TIMEOUT_SEC = 60;
/** The poller's reserved concurrency: one poll run (the lease) and one direct invocation. */
export const POLLER_CONCURRENCY = 2;
/** What the canary rule sends the poller (events/poller-canary.json). */
export const CANARY_INPUT = { olbridge: 'canary' } as const;
export const ROTATOR_TIMEOUT_SEC = 120; // testSecret calls the portal (up to 15 s with retries); at least 60 s
export const ROTATION_DAYS = 90;
/** The secret's value at creation; never changed (see the secret below). */
export const INITIAL_SECRET = '{}';

export interface OlbridgeStackProps extends StackProps {
  readonly spec: Spec;
  readonly settings: Settings;
}

export interface OlbridgeFunction {
  readonly fn: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
}

/**
 * The timing rules a deploy must satisfy; throws a clear error otherwise. The worker's timeout must
 * exceed one bot call, and the queue must hide a message for at least six worker timeouts (AWS's
 * rule for Lambda event sources: a batch retried within one visibility timeout is not redelivered
 * while still running).
 */
export function checkTimings(spec: Spec, settings: Settings): void {
  const q = spec.resources.queue;
  const problems: string[] = [];
  if (!(q.workerTimeoutSeconds > settings.botTimeoutSec)) {
    problems.push(
      `the worker's timeout (infra/resources.json queue.workerTimeoutSeconds = ${q.workerTimeoutSeconds} s) must exceed one bot call ` +
        `(BOT_HTTP_TIMEOUT_SEC = botTimeoutSec = ${settings.botTimeoutSec} s), with room for the portal calls around it`,
    );
  }
  if (q.workerTimeoutSeconds > 900) problems.push(`queue.workerTimeoutSeconds = ${q.workerTimeoutSeconds} s: Lambda allows at most 900 s`);
  if (q.visibilityTimeoutSeconds < 6 * q.workerTimeoutSeconds) {
    problems.push(
      `the queue's visibility timeout (queue.visibilityTimeoutSeconds = ${q.visibilityTimeoutSeconds} s) must be at least 6 x the worker's ` +
        `timeout (6 x ${q.workerTimeoutSeconds} = ${6 * q.workerTimeoutSeconds} s)`,
    );
  }
  if (q.visibilityTimeoutSeconds > 43_200) problems.push(`queue.visibilityTimeoutSeconds = ${q.visibilityTimeoutSeconds} s: SQS allows at most 43200 s`);
  if (problems.length > 0) throw new Error(`olbridge timings are inconsistent:\n  - ${problems.join('\n  - ')}`);
}

export class OlbridgeStack extends Stack {
  readonly table: dynamodb.Table;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly secret: secretsmanager.Secret;
  readonly api: apigwv2.HttpApi;
  readonly apiStage: apigwv2.HttpStage;
  readonly functions: Partial<Record<FunctionName, OlbridgeFunction>> = {};
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: OlbridgeStackProps) {
    super(scope, id, props);
    const { spec, settings } = props;
    const deployed = FUNCTION_NAMES.filter((f) => f !== 'poller' || settings.poller);
    checkTimings(spec, settings);
    checkEnvironment(spec, settings, deployed);
    const prefix = settings.namePrefix;
    const keep = settings.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const res = spec.resources;

    // ---- data: the table, the queues, the secret -------------------------------------------
    this.table = new dynamodb.Table(this, 'Table', {
      tableName: prefix,
      partitionKey: { name: res.table.partitionKey.name, type: attributeType(res.table.partitionKey.type) },
      sortKey: res.table.sortKey && { name: res.table.sortKey.name, type: attributeType(res.table.sortKey.type) },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: res.table.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: settings.production,
      removalPolicy: keep,
    });

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      queueName: `${prefix}-dead-letters.fifo`,
      fifo: true,
      retentionPeriod: Duration.seconds(res.deadLetterQueue.messageRetentionSeconds),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      queueName: `${prefix}-jobs.fifo`,
      fifo: true,
      contentBasedDeduplication: res.queue.contentBasedDeduplication,
      deduplicationScope: res.queue.deduplicationScope === 'messageGroup' ? sqs.DeduplicationScope.MESSAGE_GROUP : sqs.DeduplicationScope.QUEUE,
      fifoThroughputLimit:
        res.queue.fifoThroughputLimit === 'perMessageGroupId' ? sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID : sqs.FifoThroughputLimit.PER_QUEUE,
      visibilityTimeout: Duration.seconds(res.queue.visibilityTimeoutSeconds),
      retentionPeriod: Duration.seconds(res.queue.messageRetentionSeconds),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: res.queue.maxReceiveCount },
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });

    // Created as an empty JSON object (a missing key is unset for the functions); the operator puts
    // the values (docs/deploy.md). The initial value is a constant on purpose: CloudFormation writes
    // the value again whenever it changes in the template, which would wipe the operator's values
    // (say, when a key is added to infra/resources.json). The keys are in the description.
    this.secret = new secretsmanager.Secret(this, 'Secret', {
      secretName: settings.secretName,
      description: `olbridge ${settings.stage}: a JSON object with ${res.secret.keys.join(', ')} (rotated quarterly, docs/rotation.md)`,
      secretStringValue: SecretValue.unsafePlainText(INITIAL_SECRET),
      removalPolicy: keep,
    });

    const resources: ResourceValues = {
      OLBRIDGE_TABLE: this.table.tableName,
      OLBRIDGE_QUEUE_URL: this.queue.queueUrl,
      OLBRIDGE_DLQ_URL: this.deadLetterQueue.queueUrl,
      OLBRIDGE_SECRET_ID: this.secret.secretArn,
    };

    // ---- functions ----------------------------------------------------------------------------
    const make = (name: FunctionName, timeout: Duration, description: string, extra: Partial<lambda.FunctionProps> = {}): OlbridgeFunction => {
      const title = name[0].toUpperCase() + name.slice(1);
      const logGroup = new logs.LogGroup(this, `${title}Logs`, {
        logGroupName: `/aws/lambda/${prefix}-${name}`,
        retention: settings.logRetentionDays as logs.RetentionDays,
        removalPolicy: keep,
      });
      const role = access.functionRole(this, `${title}Role`, logGroup);
      const fn = new lambda.Function(this, title, {
        functionName: `${prefix}-${name}`,
        description,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(assetDir(settings.lambdaDir, name)),
        architecture: settings.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
        memorySize: settings.memoryMb[name],
        timeout,
        role,
        logGroup,
        loggingFormat: lambda.LoggingFormat.JSON,
        environment: environmentFor(spec, settings, name, resources),
        ...extra,
      });
      const made = { fn, role, logGroup };
      this.functions[name] = made;
      return made;
    };

    const receiver = make('receiver', Duration.seconds(RECEIVER_TIMEOUT_SEC), 'Bitrix24 events: verify, de-duplicate, enqueue, answer at once');
    access.receiverTable(receiver.role, this.table);
    access.sendToQueue(receiver.role, this.queue);
    access.readSecret(receiver.role, this.secret);

    const worker = make('worker', Duration.seconds(res.queue.workerTimeoutSeconds), 'Turns: call the bot, reply, hand over to a human when needed');
    access.tableReadWrite(worker.role, this.table);
    access.readSecret(worker.role, this.secret);
    // Receive, delete, change visibility (retry delays) and read attributes of the queue, granted by
    // the event source itself.
    worker.fn.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: settings.workerBatchSize,
        reportBatchItemFailures: true,
        maxConcurrency: settings.workerMaxConcurrency,
      }),
    );

    if (settings.poller) {
      // A failed run is not retried: the next scheduled run does the same work. One poll run at a
      // time: the run lease in the table (functions/poller) makes a run that overlaps the previous
      // one return at once. The reserved concurrency of 2 is that one run plus a slot for the
      // direct invocations (the canary, a health check), which take no lease and run beside it; a
      // third invocation is throttled (EventBridge invokes asynchronously; the throttled event is
      // dropped after maxEventAge, the shortest Lambda allows).
      const poller = make(
        'poller',
        Duration.seconds(POLLER_TIMEOUT_SEC),
        'Operator polling, fetch and reconciliation: messages nobody pushed to us; health and canary invocations',
        { retryAttempts: 0, maxEventAge: Duration.seconds(60), reservedConcurrentExecutions: POLLER_CONCURRENCY },
      );
      access.tableReadWrite(poller.role, this.table);
      access.sendToQueue(poller.role, this.queue);
      access.readQueueAttributes(poller.role, this.queue);
      access.readSecret(poller.role, this.secret);
      new events.Rule(this, 'PollerSchedule', {
        ruleName: `${prefix}-poller`,
        description: `Runs ${prefix}-poller every ${settings.pollerRateMinutes} minute(s)`,
        schedule: events.Schedule.rate(Duration.minutes(settings.pollerRateMinutes)),
        targets: [new targets.LambdaFunction(poller.fn, { retryAttempts: 0 })],
      });
      if (settings.canary) {
        // The synthetic canary (docs/operations.md): the rule's constant input replaces the event.
        new events.Rule(this, 'CanarySchedule', {
          ruleName: `${prefix}-canary`,
          description: `Runs the synthetic canary in ${prefix}-poller every ${settings.canaryRateMinutes} minute(s)`,
          schedule: events.Schedule.rate(Duration.minutes(settings.canaryRateMinutes)),
          targets: [new targets.LambdaFunction(poller.fn, { retryAttempts: 0, event: events.RuleTargetInput.fromObject(CANARY_INPUT) })],
        });
      }
    }

    const rotator = make('rotator', Duration.seconds(ROTATOR_TIMEOUT_SEC), 'Quarterly rotation of the secret (docs/rotation.md)');
    access.rotateSecret(rotator.role, this.secret);
    rotator.fn.addPermission('InvokedBySecretsManager', {
      principal: new iam.ServicePrincipal('secretsmanager.amazonaws.com'),
      sourceAccount: this.account,
    });
    // The L1 schedule, not `secret.addRotationSchedule`: the L2 also grants the rotator
    // `secretsmanager:GetRandomPassword` on `*`, which it does not use.
    const rotation = new secretsmanager.CfnRotationSchedule(this, 'Rotation', {
      secretId: this.secret.secretArn,
      rotationLambdaArn: rotator.fn.functionArn,
      rotationRules: { scheduleExpression: `rate(${ROTATION_DAYS} days)` },
      // Otherwise every deploy that touches the schedule starts a rotation, which fails while no new
      // webhook is staged.
      rotateImmediatelyOnUpdate: false,
    });
    // The invoke permission is a child of the function; the role's policies are children of the role.
    rotation.node.addDependency(rotator.fn, rotator.role);

    // ---- HTTP API -----------------------------------------------------------------------------
    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: `${prefix}-api`,
      description: 'Bitrix24 events (POST /bitrix/events) and health (GET /health) to the receiver',
      createDefaultStage: false,
    });
    const integration = new HttpLambdaIntegration('Receiver', receiver.fn);
    this.api.addRoutes({ path: '/bitrix/events', methods: [apigwv2.HttpMethod.POST], integration });
    this.api.addRoutes({ path: '/health', methods: [apigwv2.HttpMethod.GET], integration });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: `/aws/apigateway/${prefix}-api`,
      retention: settings.logRetentionDays as logs.RetentionDays,
      removalPolicy: keep,
    });
    this.apiStage = new apigwv2.HttpStage(this, 'ApiStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: settings.apiRateLimit, burstLimit: settings.apiBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // Source address included: it is what an allow-list is built from.
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            sourceIp: '$context.identity.sourceIp',
            route: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationLatencyMs: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            userAgent: '$context.identity.userAgent',
          }),
        ),
      },
    });

    // ---- monitoring, findings, outputs --------------------------------------------------------
    this.monitoring = new Monitoring(this, 'Monitoring', {
      spec,
      settings,
      functions: this.functions,
      queue: this.queue,
      deadLetterQueue: this.deadLetterQueue,
      apiStage: this.apiStage,
    });
    acknowledgeFindings(this);

    const handlerUrl = `${this.apiStage.url}bitrix/events`;
    new CfnOutput(this, 'HandlerUrl', { value: handlerUrl, description: 'olbridge register-bot --handler-url <this>' });
    new CfnOutput(this, 'HealthUrl', { value: `${this.apiStage.url}health` });
    new CfnOutput(this, 'SecretId', { value: this.secret.secretArn, description: 'put the secret values here (docs/deploy.md)' });
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    for (const [name, f] of Object.entries(this.functions)) {
      new CfnOutput(this, `${name[0].toUpperCase()}${name.slice(1)}FunctionName`, { value: f.fn.functionName });
    }
  }
}

function attributeType(t: 'S' | 'N' | 'B'): dynamodb.AttributeType {
  return { S: dynamodb.AttributeType.STRING, N: dynamodb.AttributeType.NUMBER, B: dynamodb.AttributeType.BINARY }[t];
}

/** `<lambdaDir>/olbridge-<name>`, which must hold `bootstrap`. */
export function assetDir(lambdaDir: string, name: string): string {
  const dir = path.join(lambdaDir, `olbridge-${name}`);
  if (!fs.existsSync(path.join(dir, 'bootstrap'))) {
    throw new Error(
      `${path.join(dir, 'bootstrap')} not found: build the functions first (\`cargo lambda build --release\` at the repository root), ` +
        'or point -c lambdaDir=<dir> at the directory holding olbridge-<name>/bootstrap' +
        (name === 'poller' ? ' (or deploy without the poller: -c poller=false)' : ''),
    );
  }
  return dir;
}
