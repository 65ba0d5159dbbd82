// Every test file in one process (`node dist/test/all.js`): aws-cdk-lib is loaded and the default
// stack built once, instead of once per file as `node --test` does (about 5 s each on 2 cores).
import './access.test';
import './api.test';
import './environment.test';
import './monitoring.test';
import './nag.test';
import './resources.test';
