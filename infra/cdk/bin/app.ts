#!/usr/bin/env node
// The CDK app: settings from context (cdk.json or -c key=value), definitions from infra/*.json,
// cdk-nag's AwsSolutions checks on everything (a finding not acknowledged fails the synth).

import * as path from 'node:path';

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

import { resolveSettings, settingsFromContext } from '../lib/settings';
import { loadSpec } from '../lib/spec';
import { OlbridgeStack } from '../lib/stack';

const app = new App();
// This package's directory (infra/cdk), whether run from the sources or from dist/.
const cdkDir = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const settings = resolveSettings(settingsFromContext((k) => app.node.tryGetContext(k)), cdkDir);
new OlbridgeStack(app, `Olbridge-${settings.stage}`, {
  spec: loadSpec(),
  settings,
  description: `olbridge (${settings.stage}): Bitrix24 Open Lines <-> AI bot bridge`,
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
