// Each function's environment is exactly what infra/functions.json says it reads from the
// environment, and no key of the secret is ever an environment variable.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { secretKeys } from '../lib/environment';
import { build, defaults, lambdaFn, resources, spec, specWith } from './support';

const secrets = secretKeys(spec);

describe('function environments', () => {
  test('every variable a function reads from its environment is defined, under the same name, and nothing else', () => {
    const { template } = defaults();
    assert.ok(spec.functions.functions.length >= 3, 'infra/functions.json lists the functions');
    for (const f of spec.functions.functions) {
      const wanted = f.vars.filter((v) => v.from === 'env').map((v) => v.name).sort();
      const have = Object.keys(lambdaFn(template, f.name).props.Environment?.Variables ?? {}).sort();
      assert.deepEqual(have, wanted, `${f.name}: environment = infra/functions.json's env variables`);
    }
  });

  test('no key of the secret appears in any function environment, as a name or as a value', () => {
    const { template } = defaults();
    assert.ok(secrets.has('B24_WEBHOOK_BASE') && secrets.has('BOT_HTTP_AUTH'));
    for (const [id, r] of Object.entries(resources(template, 'AWS::Lambda::Function'))) {
      const vars = r.Properties.Environment?.Variables ?? {};
      for (const name of Object.keys(vars)) assert.ok(!secrets.has(name), `${id} has secret key ${name} in its environment`);
      assert.ok(!JSON.stringify(vars).includes('B24_WEBHOOK_BASE'), `${id}: no secret key in a value`);
    }
  });

  test('the resources and the bot timeout come from the stack', () => {
    const { template } = build({ botTimeoutSec: 90 });
    const env = lambdaFn(template, 'worker').props.Environment.Variables;
    assert.deepEqual(env.OLBRIDGE_TABLE, { Ref: Object.keys(resources(template, 'AWS::DynamoDB::Table'))[0] });
    assert.deepEqual(env.OLBRIDGE_SECRET_ID, { Ref: Object.keys(resources(template, 'AWS::SecretsManager::Secret'))[0] });
    assert.equal(env.BOT_HTTP_TIMEOUT_SEC, '90');
    assert.ok(JSON.stringify(env.OLBRIDGE_QUEUE_URL).includes('Queue'), 'queue URL is a reference to the queue');
  });

  test("operator values reach the functions that read them; unset ones are blank (the function's default)", () => {
    const { template } = build({ environment: { BOT_HTTP_URL: 'https://bot.example.com/hook', B24_MEMBER_ID: 'abc123' } });
    const worker = lambdaFn(template, 'worker').props.Environment.Variables;
    const receiver = lambdaFn(template, 'receiver').props.Environment.Variables;
    assert.equal(worker.BOT_HTTP_URL, 'https://bot.example.com/hook');
    assert.equal(worker.B24_MEMBER_ID, 'abc123');
    assert.equal(receiver.B24_MEMBER_ID, 'abc123');
    assert.equal(receiver.BOT_HTTP_URL, undefined, 'the receiver does not read BOT_HTTP_URL');
    assert.equal(worker.OLBRIDGE_FALLBACK_MESSAGE, '');
  });

  test('every instance is given the whole portal budget: they share it through the table', () => {
    const template = build({ workerMaxConcurrency: 3, portalRatePerSec: 2, portalBurst: 40 }).template;
    for (const name of ['worker', 'poller']) {
      const env = lambdaFn(template, name).props.Environment.Variables;
      assert.equal(env.B24_RATE_PER_SEC, '2', name);
      assert.equal(env.B24_RATE_BURST, '40', name);
    }
    const given = lambdaFn(build({ environment: { B24_RATE_PER_SEC: '1.5' } }).template, 'worker').props.Environment.Variables;
    assert.equal(given.B24_RATE_PER_SEC, '1.5', 'an explicit value wins');
  });

  test('a secret key, a stack-owned name or an unknown name in the environment setting is refused', () => {
    assert.throws(() => build({ environment: { BOT_HTTP_AUTH: 'Bearer x' } }), /BOT_HTTP_AUTH is a key of the secret/);
    assert.throws(() => build({ environment: { OLBRIDGE_TABLE: 'x' } }), /set by the stack/);
    assert.throws(() => build({ environment: { BOT_HTTP_TIMEOUT_SEC: '30' } }), /botTimeoutSec/);
    assert.throws(() => build({ environment: { NOT_A_VARIABLE: '1' } }), /not read by any deployed function/);
  });

  test('a functions.json that sends a secret key through the environment fails the synth', () => {
    const bad = specWith((s) => s.functions.functions[0].vars.push({ name: 'BOT_HMAC_SECRET', from: 'env' }));
    assert.throws(() => build({}, bad), /reads BOT_HMAC_SECRET from its environment, but BOT_HMAC_SECRET is a key of the secret/);
  });

  test('the poller gets exactly what functions.json lists for it: its mode and polling settings, no secret key', () => {
    const env = lambdaFn(build({ environment: { OLBRIDGE_MODE: 'operator', B24_POLL_SEC: '3' } }).template, 'poller').props.Environment.Variables;
    const listed = spec.functions.functions.find((f) => f.name === 'poller');
    assert.ok(listed, 'infra/functions.json lists the poller');
    assert.deepEqual(Object.keys(env).sort(), listed.vars.filter((v) => v.from === 'env').map((v) => v.name).sort());
    assert.equal(env.OLBRIDGE_MODE, 'operator');
    assert.equal(env.B24_POLL_SEC, '3');
    for (const key of ['B24_WEBHOOK_BASE', 'BOT_HTTP_AUTH', 'BOT_HMAC_SECRET', 'B24_APPLICATION_TOKEN']) assert.equal(env[key], undefined, key);
  });

  test('a function functions.json does not list gets only the resources', () => {
    const without = specWith((s) => {
      s.functions.functions = s.functions.functions.filter((f: { name: string }) => f.name !== 'poller');
    });
    const env = lambdaFn(build({}, without).template, 'poller').props.Environment.Variables;
    assert.deepEqual(Object.keys(env).sort(), ['OLBRIDGE_QUEUE_URL', 'OLBRIDGE_SECRET_ID', 'OLBRIDGE_SECRET_TTL_SEC', 'OLBRIDGE_TABLE']);
  });
});
