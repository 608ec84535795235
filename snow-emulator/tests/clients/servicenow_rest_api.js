// Drives the emulator with servicenow-rest-api (npm), unmodified, over HTTPS.
//
// Run by snow-emulator/tests/it/platform/clients.rs with SNOW_HOST (an IP:port, which the
// client uses as the host because it contains a dot), NODE_PATH naming the installed
// node_modules and NODE_EXTRA_CA_CERTS naming the test CA. The client offers Basic
// authentication only. Prints one line per step; exits non-zero on the first failure.

const ServiceNow = require('servicenow-rest-api');

const host = process.env.SNOW_HOST;
const check = (cond, what) => {
  if (!cond) {
    console.log(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
};
const call = (fn) => new Promise((resolve) => fn(resolve));
// Silence the library's own logging of URLs so the output is ours.
const log = console.log;
const quiet = async (fn) => {
  console.log = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
  }
};

(async () => {
  const admin = new ServiceNow(host, 'admin', 'admin');
  const integration = new ServiceNow(host, 'fnms.integration', 'integration');

  const created = await quiet(() =>
    call((cb) => admin.createNewTask({ short_description: 'from npm', state: 'Draft' }, 'ast_contract', cb)));
  check(created && created.number && created.number.startsWith('CNTR'), `insert (${created && created.number})`);
  const number = created.number;

  const rows = await quiet(() =>
    call((cb) => admin.getTableData(['number', 'short_description', 'state'], [`number=${number}`], 'ast_contract', cb)));
  check(Array.isArray(rows) && rows.length === 1, 'encoded query');
  check(rows[0].state === 'Draft', `display values (state shown as ${rows[0].state})`);

  const sysId = await quiet(() => call((cb) => admin.getSysId('ast_contract', number, cb)));
  check(typeof sysId === 'string' && sysId.length === 32, 'get sys_id by number');

  const updated = await quiet(() =>
    call((cb) => admin.UpdateTask('ast_contract', number, { short_description: 'updated by npm' }, cb)));
  check(updated && updated.short_description === 'updated by npm', 'update');

  const denied = await quiet(() =>
    call((cb) => integration.createNewTask({ short_description: 'intruder' }, 'ast_contract', cb)));
  check(denied && denied.response && denied.response.status === 403, '403 for what the role forbids');
  check(denied.response.data.status === 'failure', "ServiceNow's error envelope");

  const deleted = await quiet(() => call((cb) => admin.DeleteTask('ast_contract', number, cb)));
  check(deleted && deleted.status === 204, 'delete (204)');
  const after = await quiet(() =>
    call((cb) => admin.getTableData(['number'], [`number=${number}`], 'ast_contract', cb)));
  check(Array.isArray(after) && after.length === 0, 'deleted record is gone');
  log('SERVICENOW-REST-API OK');
})();
