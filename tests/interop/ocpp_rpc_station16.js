// An OCPP 1.6J charge point made with ocpp-rpc in strict mode (its own copy of the 1.6 and security-extension
// schemas checks every request and response both ways). Against the CSMS at argv[2] as identity argv[3] (Basic auth
// password argv[4]): boot, heartbeat, status per connector, authorize, a transaction with meter values, a security
// event; then it answers every CSMS-initiated 1.6 command and stops the transaction when RemoteStopTransaction
// comes. One JSON line per exchange on stdout; exit code 0 when every step succeeded.
const { RPCClient } = require('ocpp-rpc');

const [endpoint, identity, password] = process.argv.slice(2);
const now = () => new Date().toISOString();
const log = (step, data) => process.stdout.write(JSON.stringify({ step, data }) + '\n');

const ANSWERS = {
  RemoteStartTransaction: { status: 'Accepted' },
  Reset: { status: 'Accepted' },
  GetConfiguration: { configurationKey: [{ key: 'HeartbeatInterval', readonly: false, value: '300' }] },
  ChangeConfiguration: { status: 'Accepted' },
  TriggerMessage: { status: 'Accepted' },
  ExtendedTriggerMessage: { status: 'Accepted' },
  ChangeAvailability: { status: 'Accepted' },
  UnlockConnector: { status: 'Unlocked' },
  SetChargingProfile: { status: 'Accepted' },
  ClearChargingProfile: { status: 'Accepted' },
  GetCompositeSchedule: { status: 'Accepted', connectorId: 1 },
  DataTransfer: { status: 'Accepted' },
  ClearCache: { status: 'Accepted' },
  SendLocalList: { status: 'Accepted' },
  GetLocalListVersion: { listVersion: 3 },
  ReserveNow: { status: 'Accepted' },
  CancelReservation: { status: 'Accepted' },
  UpdateFirmware: {},
  SignedUpdateFirmware: { status: 'Accepted' },
  GetDiagnostics: { fileName: 'diagnostics.tar.gz' },
  GetLog: { status: 'Accepted', filename: 'security.log' },
  GetInstalledCertificateIds: { status: 'NotFound' },
  InstallCertificate: { status: 'Accepted' },
  DeleteCertificate: { status: 'NotFound' },
  CertificateSigned: { status: 'Accepted' },
};

async function main() {
  const cli = new RPCClient({ endpoint, identity, password, protocols: ['ocpp1.6'], strictMode: true,
                              reconnect: false, callTimeoutMs: 10000 });
  let stopRequested;
  const stopped = new Promise((resolve) => { stopRequested = resolve; });
  for (const [method, answer] of Object.entries(ANSWERS)) {
    cli.handle(method, ({ params }) => { log(method, params); return answer; });
  }
  cli.handle('RemoteStopTransaction', ({ params }) => {
    log('RemoteStopTransaction', params);
    setTimeout(() => stopRequested(params.transactionId), 10);
    return { status: 'Accepted' };
  });
  await cli.connect();
  log('BootNotification', await cli.call('BootNotification', {
    chargePointVendor: 'ocpp-rpc', chargePointModel: 'rpc16', firmwareVersion: '2.2.1' }));
  log('Heartbeat', await cli.call('Heartbeat', {}));
  for (const connectorId of [0, 1]) {
    log('StatusNotification', await cli.call('StatusNotification', {
      connectorId, errorCode: 'NoError', status: connectorId ? 'Preparing' : 'Available', timestamp: now() }));
  }
  log('Authorize', await cli.call('Authorize', { idTag: 'RPC-TAG-1' }));
  const start = await cli.call('StartTransaction', {
    connectorId: 1, idTag: 'RPC-TAG-1', meterStart: 100, timestamp: now() });
  log('StartTransaction', start);
  const transactionId = start.transactionId;
  log('MeterValues', await cli.call('MeterValues', { connectorId: 1, transactionId, meterValue: [{
    timestamp: now(), sampledValue: [
      { value: '1.1', measurand: 'Energy.Active.Import.Register', unit: 'kWh', context: 'Sample.Periodic' },
      { value: '11000', measurand: 'Power.Active.Import', unit: 'W' }] }] }));
  log('SecurityEventNotification', await cli.call('SecurityEventNotification', {
    type: 'StartupOfTheDevice', timestamp: now() }));
  log('ready', { transactionId });
  const which = await stopped;
  log('StopTransaction', await cli.call('StopTransaction', {
    transactionId: which, meterStop: 2100, timestamp: now(), reason: 'Remote' }));
  await cli.close();
  log('done', {});
}

main().catch((err) => { log('error', { message: String(err && err.stack || err) }); process.exit(1); });
