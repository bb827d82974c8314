// An OCPP 2.0.1 charging station made with ocpp-rpc in strict mode (every request and response is validated
// against its own copy of the official schemas). Runs a boot/authorize/transaction script against the CSMS at
// argv[2] as identity argv[3] (Basic auth password argv[4]), answers RequestStopTransaction, and prints one JSON
// line per exchange on stdout. Exit code 0 when every step succeeded.
const { RPCClient } = require('ocpp-rpc');

const [endpoint, identity, password] = process.argv.slice(2);
const now = () => new Date().toISOString();
const log = (step, data) => process.stdout.write(JSON.stringify({ step, data }) + '\n');

async function main() {
  const cli = new RPCClient({ endpoint, identity, password, protocols: ['ocpp2.0.1'], strictMode: true,
                              reconnect: false, callTimeoutMs: 10000 });
  let stopRequested;
  const stopped = new Promise((resolve) => { stopRequested = resolve; });
  cli.handle('RequestStopTransaction', ({ params }) => {
    log('RequestStopTransaction', params);
    setTimeout(() => stopRequested(params.transactionId), 10);
    return { status: 'Accepted' };
  });
  await cli.connect();
  log('BootNotification', await cli.call('BootNotification', {
    chargingStation: { model: 'rpc-model', vendorName: 'ocpp-rpc' }, reason: 'PowerUp' }));
  log('Heartbeat', await cli.call('Heartbeat', {}));
  log('StatusNotification', await cli.call('StatusNotification', {
    timestamp: now(), connectorStatus: 'Occupied', evseId: 1, connectorId: 1 }));
  const idToken = { idToken: 'RPC-TOKEN-1', type: 'ISO14443' };
  log('Authorize', await cli.call('Authorize', { idToken }));
  const txId = 'rpc-tx-1';
  const meter = (wh) => [{ timestamp: now(), sampledValue: [
    { value: wh, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } }] }];
  log('TransactionEvent', await cli.call('TransactionEvent', {
    eventType: 'Started', timestamp: now(), triggerReason: 'Authorized', seqNo: 0,
    transactionInfo: { transactionId: txId, chargingState: 'Charging' }, idToken,
    evse: { id: 1, connectorId: 1 }, meterValue: meter(0) }));
  log('TransactionEvent', await cli.call('TransactionEvent', {
    eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1,
    transactionInfo: { transactionId: txId, chargingState: 'Charging' }, meterValue: meter(1500.5) }));
  log('ready', { transactionId: txId });
  const which = await stopped;
  log('TransactionEvent', await cli.call('TransactionEvent', {
    eventType: 'Ended', timestamp: now(), triggerReason: 'RemoteStop', seqNo: 2,
    transactionInfo: { transactionId: which, stoppedReason: 'Remote', chargingState: 'Idle' },
    meterValue: meter(3000) }));
  await cli.close();
  log('done', {});
}

main().catch((err) => { log('error', { message: String(err && err.stack || err) }); process.exit(1); });
