// cdk-nag's AwsSolutions pack passes: every finding is fixed or acknowledged with a reason.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

import { resolveSettings } from '../lib/settings';
import { OlbridgeStack } from '../lib/stack';
import { CDK_DIR, lambdaDir, spec } from './support';

function synthWithNag(input: Parameters<typeof resolveSettings>[0]): { error?: Error; report: any } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'olbridge-nag-'));
  try {
    const app = new App({ outdir });
    const settings = resolveSettings({ lambdaDir: lambdaDir(), ...input }, CDK_DIR);
    new OlbridgeStack(app, `Olbridge-${settings.stage}`, { spec, settings });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    let error: Error | undefined;
    try {
      app.synth();
    } catch (e) {
      error = e as Error;
    }
    return { error, report: JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

describe('cdk-nag', () => {
  for (const stage of ['dev', 'prod']) {
    test(`AwsSolutions finds nothing unacknowledged (${stage})`, () => {
      const { error, report } = synthWithNag({ stage, alarmEmail: 'ops@example.com' });
      const violations = report.pluginReports.flatMap((p: any) => p.violations.map((v: any) => `${v.ruleName}: ${v.violatingConstructs.map((c: any) => c.constructPath).join(', ')}`));
      assert.deepEqual(violations, []);
      assert.equal(error, undefined);
      assert.deepEqual(report.pluginReports.map((p: any) => p.conclusion), ['success']);
    });
  }
});
