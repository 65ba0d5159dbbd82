// Alarms (to one SNS topic) and the one dashboard. AWS metrics come from the constructs; the
// functions' own metrics come from the catalogue (catalogue.ts), so every name is one
// infra/metrics.json defines. docs/deploy.md ("Alarms") says what each alarm means and what to do;
// keep the two in step (a test checks that every alarm is documented there).

import { Duration } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

import { Catalogue, filledSum } from './catalogue';
import type { Settings } from './settings';
import type { Spec } from './spec';
import type { FunctionName, OlbridgeFunction } from './stack';

export interface MonitoringProps {
  readonly spec: Spec;
  readonly settings: Settings;
  readonly functions: Partial<Record<FunctionName, OlbridgeFunction>>;
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  readonly apiStage: apigwv2.HttpStage;
}

/** Turn outcomes that count as done right (docs/metrics.md, "Reply success rate"). */
export const SUCCESS_OUTCOMES = ['answered', 'cached', 'silent', 'handed_off'];
/** Turn outcomes where the customer got the fallback message instead of an answer. */
export const FAILURE_OUTCOMES = ['fallback', 'gave_up'];
/** Escalation reasons that are failures, already watched by the fallback alarm. */
export const FAILURE_REASONS = ['bot_failure', 'gave_up'];
/** The success-rate alarm judges a period only with at least this many answerable turns. */
export const SUCCESS_MIN_TURNS = 10;
/** Failed canaries in 15 minutes that raise the alarm (two in a row at the default 5-minute rate). */
export const CANARY_FAILED_COUNT = 2;
/** Failed poller runs in 15 minutes that raise the alarm (several in a row, not one blip). */
export const POLLER_FAILED_COUNT = 3;

export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cw.Dashboard;
  readonly alarms: cw.Alarm[] = [];
  readonly catalogue: Catalogue;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { settings, functions, queue, deadLetterQueue, apiStage } = props;
    const prefix = settings.namePrefix;
    const cat = (this.catalogue = new Catalogue(props.spec.metrics));
    const five = Duration.minutes(5);

    this.topic = new sns.Topic(this, 'AlarmTopic', { topicName: `${prefix}-alarms`, displayName: `olbridge ${settings.stage} alarms`, enforceSSL: true });
    if (settings.alarmEmail) this.topic.addSubscription(new EmailSubscription(settings.alarmEmail));
    const action = new SnsAction(this.topic);

    const alarm = (name: string, metric: cw.IMetric, p: Omit<cw.CreateAlarmOptions, 'alarmName' | 'alarmDescription'> & { what: string }) => {
      const a = new cw.Alarm(this, name, {
        alarmName: `${prefix}-${name}`,
        alarmDescription: `${p.what} What to do: docs/deploy.md, "Alarms", ${name}.`,
        metric,
        threshold: p.threshold,
        comparisonOperator: p.comparisonOperator ?? cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: p.evaluationPeriods,
        datapointsToAlarm: p.datapointsToAlarm,
        treatMissingData: p.treatMissingData ?? cw.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms.push(a);
      return a;
    };

    // ---- the functions (AWS/Lambda) -----------------------------------------------------------
    for (const [name, f] of Object.entries(functions)) {
      alarm(`${name}-errors`, f.fn.metricErrors({ period: five, statistic: 'Sum' }), {
        what: `${f.fn.functionName} failed (an error or a timeout rather than an answer).`,
        threshold: 1,
        evaluationPeriods: 1,
      });
      alarm(`${name}-throttles`, f.fn.metricThrottles({ period: five, statistic: 'Sum' }), {
        what: `${f.fn.functionName} was throttled (account or function concurrency exhausted).`,
        threshold: 1,
        evaluationPeriods: 1,
      });
    }
    const worker = functions.worker;
    if (worker === undefined) throw new Error('the worker is always deployed');
    const workerTimeoutMs = props.spec.resources.queue.workerTimeoutSeconds * 1000;
    alarm('worker-duration', worker.fn.metricDuration({ period: five, statistic: 'p95' }), {
      what: `The worker's p95 duration is above 80% of its ${workerTimeoutMs / 1000} s timeout: turns are about to time out.`,
      threshold: Math.round(workerTimeoutMs * 0.8),
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
    });

    // ---- the queues and the API ---------------------------------------------------------------
    alarm('queue-age', queue.metricApproximateAgeOfOldestMessage({ period: five, statistic: 'Maximum' }), {
      what: `A customer message has waited more than ${settings.queueAgeAlarmSec} s in the queue.`,
      threshold: settings.queueAgeAlarmSec,
      evaluationPeriods: 1,
    });
    alarm('dead-letters', deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum' }), {
      what: 'A job is in the dead-letter queue: the worker could not even give its turn up.',
      threshold: 1,
      evaluationPeriods: 1,
    });
    alarm('api-5xx', apiStage.metricServerError({ period: five, statistic: 'Sum' }), {
      what: 'The HTTP API answered Bitrix24 with a 5xx: those events are not queued, and Bitrix24 does not resend them.',
      threshold: 1,
      evaluationPeriods: 1,
    });

    // ---- the functions' own metrics (infra/metrics.json) ---------------------------------------
    const quarter = Duration.minutes(15);
    const failed = cat.byValue('Turns', 'Outcome', 'f', quarter, checked(cat, 'Turns', 'Outcome', FAILURE_OUTCOMES));
    alarm('fallbacks', new cw.MathExpression({ expression: filledSum(Object.keys(failed)), usingMetrics: failed, period: quarter, label: 'fallback + gave_up turns' }), {
      what: `At least ${settings.fallbackAlarmCount} customers got the fallback message in 15 minutes (the bot kept failing, or turns were given up).`,
      threshold: settings.fallbackAlarmCount,
      evaluationPeriods: 1,
    });
    const reasons = cat.values('Escalations', 'Reason').filter((r) => !FAILURE_REASONS.includes(r));
    const escalated = cat.byValue('Escalations', 'Reason', 'e', quarter, reasons);
    alarm('escalations', new cw.MathExpression({ expression: filledSum(Object.keys(escalated)), usingMetrics: escalated, period: quarter, label: 'escalations' }), {
      what: `At least ${settings.escalationAlarmCount} chats went to a human in 15 minutes for ${reasons.join(', ')}.`,
      threshold: settings.escalationAlarmCount,
      evaluationPeriods: 1,
    });
    alarm('bot-latency', cat.metric('BotLatency', { statistic: 'p95', period: five }), {
      what: `The bot's p95 answer time is above ${settings.botLatencyAlarmMs} ms for 15 minutes.`,
      threshold: settings.botLatencyAlarmMs,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });
    const hour = Duration.hours(1);
    alarm('reply-success', this.replySuccessRate(hour, SUCCESS_MIN_TURNS), {
      what: `Fewer than ${settings.replySuccessAlarmPercent}% of the last hour's answerable turns (at least ${SUCCESS_MIN_TURNS}) succeeded.`,
      threshold: settings.replySuccessAlarmPercent,
      comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    alarm('rotation-due', cat.metric('RotationNothingStaged', { period: Duration.days(1) }), {
      what: 'The quarterly rotation ran and found no new webhook staged: the quarterly rotation is due (docs/rotation.md).',
      threshold: 1,
      evaluationPeriods: 1,
    });
    alarm('rotation-failed', cat.metric('RotationFailed', { period: hour }), {
      what: 'A rotation step failed (docs/rotation.md, "When the alarm fires").',
      threshold: 1,
      evaluationPeriods: 1,
    });
    const poller = functions.poller;
    if (poller !== undefined) {
      const silence = Duration.minutes(settings.pollerSilenceMinutes);
      alarm('poller-silent', poller.fn.metricInvocations({ period: silence, statistic: 'Sum' }), {
        what: `The poller has not run for ${settings.pollerSilenceMinutes} minutes: unanswered messages are not being recovered.`,
        threshold: 1,
        comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cw.TreatMissingData.BREACHING,
      });
      alarm('poller-failed', cat.metric('PollerFailed', { period: quarter }), {
        what: `At least ${POLLER_FAILED_COUNT} poller runs failed in 15 minutes.`,
        threshold: POLLER_FAILED_COUNT,
        evaluationPeriods: 1,
      });
      if (settings.canary) {
        alarm('canary-failed', cat.metric('CanaryFailed', { period: quarter }), {
          what: `At least ${CANARY_FAILED_COUNT} synthetic canaries in 15 minutes got no bot reply within OLBRIDGE_CANARY_TIMEOUT_SEC (or got the fallback message).`,
          threshold: CANARY_FAILED_COUNT,
          evaluationPeriods: 1,
        });
      }
    }

    this.dashboard = this.buildDashboard(props);
  }

  /**
   * Reply success rate, percent: (answered + cached + silent + handed_off) / every answerable turn (all
   * outcomes but `ignored`, `window_closed` and `rate_limited`), as docs/metrics.md defines it. A period with fewer than `minTurns`
   * answerable turns counts as 100 (too few to judge).
   */
  replySuccessRate(period: Duration, minTurns: number): cw.MathExpression {
    const ok = this.catalogue.byValue('Turns', 'Outcome', 's', period, checked(this.catalogue, 'Turns', 'Outcome', SUCCESS_OUTCOMES));
    const bad = this.catalogue.byValue('Turns', 'Outcome', 'f', period, checked(this.catalogue, 'Turns', 'Outcome', FAILURE_OUTCOMES));
    const okSum = `(${filledSum(Object.keys(ok))})`;
    const all = `(${filledSum([...Object.keys(ok), ...Object.keys(bad)])})`;
    return new cw.MathExpression({
      expression: minTurns > 0 ? `IF(${all} >= ${minTurns}, 100 * ${okSum} / ${all}, 100)` : `100 * ${okSum} / ${all}`,
      usingMetrics: { ...ok, ...bad },
      period,
      label: 'reply success rate (%)',
    });
  }

  private buildDashboard(props: MonitoringProps): cw.Dashboard {
    const { settings, functions, queue, deadLetterQueue, apiStage } = props;
    const cat = this.catalogue;
    const five = Duration.minutes(5);
    const d = new cw.Dashboard(this, 'Dashboard', { dashboardName: settings.namePrefix, defaultInterval: Duration.days(1) });
    const graph = (title: string, left: cw.IMetric[], extra: Partial<cw.GraphWidgetProps> = {}) =>
      new cw.GraphWidget({ title, left, width: 8, height: 6, ...extra });

    const pct = (name: string, stat: string) => cat.metric(name, { statistic: stat, period: five, label: `${name} ${stat}` });
    const errorRate = Object.entries(functions)
      .filter(([n]) => n !== 'rotator')
      .map(([n, f], i) =>
        new cw.MathExpression({
          expression: `100 * FILL(err${i}, 0) / inv${i}`,
          usingMetrics: { [`err${i}`]: f.fn.metricErrors({ period: five }), [`inv${i}`]: f.fn.metricInvocations({ period: five }) },
          period: five,
          label: `${n} errors (%)`,
        }),
      );
    const api5xx = new cw.MathExpression({
      expression: '100 * FILL(x, 0) / n',
      usingMetrics: { x: apiStage.metricServerError({ period: five }), n: apiStage.metricCount({ period: five }) },
      period: five,
      label: 'API 5xx (%)',
    });

    d.addWidgets(
      new cw.TextWidget({
        markdown: `# olbridge ${settings.stage}\nDelivery KPIs (docs/metrics.md). Alarms and what to do: docs/deploy.md, "Alarms".`,
        width: 24,
        height: 2,
      }),
    );
    d.addWidgets(
      graph('Latency: end to end (ms)', [pct('EndToEndLatency', 'p50'), pct('EndToEndLatency', 'p95')], { leftYAxis: { min: 0 } }),
      graph('Latency: bridge overhead and bot (ms)', [pct('BridgeOverhead', 'p50'), pct('BridgeOverhead', 'p95'), pct('BotLatency', 'p95')], {
        leftYAxis: { min: 0 },
      }),
      graph('Reply success rate (%)', [this.replySuccessRate(five, 0)], { leftYAxis: { min: 0, max: 100 } }),
    );
    d.addWidgets(
      graph('Turns by outcome', Object.values(cat.byValue('Turns', 'Outcome', 't', five)), { stacked: true }),
      graph('Escalations by reason', Object.values(cat.byValue('Escalations', 'Reason', 'r', five)), { stacked: true }),
      graph('Error rate (%)', [...errorRate, api5xx], { leftYAxis: { min: 0 } }),
    );
    d.addWidgets(
      graph(
        'Queue depth',
        [
          queue.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum', label: 'waiting' }),
          queue.metricApproximateNumberOfMessagesNotVisible({ period: five, statistic: 'Maximum', label: 'in flight' }),
          deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum', label: 'dead letters' }),
        ],
        { right: [queue.metricApproximateAgeOfOldestMessage({ period: five, statistic: 'Maximum', label: 'oldest (s)' })] },
      ),
      // Requests the portal counted, per turn: a batch counts once, for the first call it carried.
      graph('REST calls per turn', [cat.metric('TurnRestCalls', { statistic: 'Average', period: five, label: 'REST calls per turn (average)' })]),
      graph('Events received, by result', Object.values(cat.byValue('Events', 'Result', 'v', five)), { stacked: true }),
    );
    d.addWidgets(
      new cw.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }),
    );
    return d;
  }
}

/** `wanted`, each checked to be a value the catalogue lists for the dimension. */
function checked(cat: Catalogue, metric: string, dimension: string, wanted: readonly string[]): readonly string[] {
  const known = cat.values(metric, dimension);
  for (const w of wanted) if (!known.includes(w)) throw new Error(`infra/metrics.json: ${metric} has no ${dimension}=${w} (it lists ${known.join(', ')})`);
  return wanted;
}
