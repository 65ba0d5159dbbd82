// The HTTP API: the receiver's two routes, stage throttling, access logs, the optional allow-list.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ALLOWED_CIDRS } from '../lib/environment';
import { build, defaults, lambdaFn, resources, specWith } from './support';

describe('HTTP API', () => {
  test('POST /bitrix/events and GET /health go to the receiver, and nothing else is routed', () => {
    const { template } = defaults();
    const routes = Object.values(resources(template, 'AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey).sort();
    assert.deepEqual(routes, ['GET /health', 'POST /bitrix/events']);
    const receiver = lambdaFn(template, 'receiver');
    const [integration] = Object.values(resources(template, 'AWS::ApiGatewayV2::Integration'));
    assert.deepEqual(integration.Properties.IntegrationUri, { 'Fn::GetAtt': [receiver.id, 'Arn'] });
    assert.equal(integration.Properties.PayloadFormatVersion, '2.0');
  });

  test('the stage is throttled and writes JSON access logs (with the source address) to a log group with retention', () => {
    const { template } = build({ apiRateLimit: 20, apiBurstLimit: 40 });
    const [stage] = Object.values(resources(template, 'AWS::ApiGatewayV2::Stage'));
    assert.equal(stage.Properties.StageName, '$default');
    assert.equal(stage.Properties.DefaultRouteSettings.ThrottlingRateLimit, 20);
    assert.equal(stage.Properties.DefaultRouteSettings.ThrottlingBurstLimit, 40);
    const groupId = stage.Properties.AccessLogSettings.DestinationArn['Fn::GetAtt'][0];
    assert.equal(resources(template, 'AWS::Logs::LogGroup')[groupId].Properties.RetentionInDays, 30);
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
    assert.equal(format.sourceIp, '$context.identity.sourceIp');
  });

  test('the receiver reads OLBRIDGE_ALLOWED_CIDRS (infra/functions.json), so the allow-list reaches it as comma-separated CIDRs', () => {
    const env = lambdaFn(build({ allowedCidrs: ['203.0.113.0/24', '2001:db8::/32'] }).template, 'receiver').props.Environment.Variables;
    assert.equal(env[ALLOWED_CIDRS], '203.0.113.0/24,2001:db8::/32');
    const open = lambdaFn(build({}).template, 'receiver').props.Environment.Variables;
    assert.equal(open[ALLOWED_CIDRS], '', 'no allow-list: empty, everyone may post (the token is still checked)');
    assert.throws(() => build({ allowedCidrs: ['203.0.113.0/33'] }), /not an IPv4 or IPv6 CIDR/);
    const worker = lambdaFn(build({ allowedCidrs: ['203.0.113.0/24'] }).template, 'worker').props.Environment.Variables;
    assert.equal(worker[ALLOWED_CIDRS], undefined, 'only the receiver gets the allow-list');
  });

  test('an allow-list is still refused by a spec whose receiver does not read OLBRIDGE_ALLOWED_CIDRS', () => {
    const without = specWith((s) => {
      const receiver = s.functions.functions.find((f: any) => f.name === 'receiver');
      receiver.vars = receiver.vars.filter((v: any) => v.name !== ALLOWED_CIDRS);
    });
    assert.throws(() => build({ allowedCidrs: ['203.0.113.0/24'] }, without), /receiver does not read OLBRIDGE_ALLOWED_CIDRS/);
  });
});
