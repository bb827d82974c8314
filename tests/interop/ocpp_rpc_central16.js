// An OCPP 1.6J central system made with ocpp-rpc (server role) in strict mode: every request and response is
// checked against its own copy of the 1.6 and security-extension schemas. It prints {"step":"listening","port":N},
// serves the station's messages (transaction ids from 500), and once the station's transaction sends meter values it
// sends every CSMS-initiated command our 1.6 station serves, RemoteStopTransaction last; one JSON line per exchange
// on stdout, {"step":"done"} after the StopTransaction.
const { RPCServer } = require('ocpp-rpc');

const now = () => new Date().toISOString();
const log = (step, data) => process.stdout.write(JSON.stringify({ step, data }) + '\n');

const COMMANDS = (tx) => [
  ['GetConfiguration', { key: ['HeartbeatInterval', 'ISO15118PnCEnabled', 'NoSuchKey'] }],
  ['ChangeConfiguration', { key: 'MeterValueSampleInterval', value: '30' }],
  ['TriggerMessage', { requestedMessage: 'Heartbeat' }],
  ['ExtendedTriggerMessage', { requestedMessage: 'StatusNotification', connectorId: 1 }],
  ['ChangeAvailability', { connectorId: 2, type: 'Inoperative' }],
  ['ChangeAvailability', { connectorId: 2, type: 'Operative' }],
  ['UnlockConnector', { connectorId: 2 }],
  ['SetChargingProfile', { connectorId: 1, csChargingProfiles: {
    chargingProfileId: 3, stackLevel: 1, chargingProfilePurpose: 'TxProfile', chargingProfileKind: 'Relative',
    transactionId: tx, chargingSchedule: { chargingRateUnit: 'A', chargingSchedulePeriod: [
      { startPeriod: 0, limit: 12.5, numberPhases: 3 }] } } }],
  ['GetCompositeSchedule', { connectorId: 1, duration: 900, chargingRateUnit: 'A' }],
  ['ClearChargingProfile', { id: 3 }],
  ['ClearCache', {}],
  ['SendLocalList', { listVersion: 2, updateType: 'Full',
    localAuthorizationList: [{ idTag: 'LOCAL-1', idTagInfo: { status: 'Accepted' } }] }],
  ['GetLocalListVersion', {}],
  ['DataTransfer', { vendorId: 'com.example.unknown', messageId: 'Ping', data: 'x' }],
  ['GetInstalledCertificateIds', { certificateType: 'CentralSystemRootCertificate' }],
  ['InstallCertificate', { certificateType: 'ManufacturerRootCertificate', certificate: 'not a certificate' }],
  ['DeleteCertificate', { certificateHashData: { hashAlgorithm: 'SHA256', issuerNameHash: 'aa', issuerKeyHash: 'bb',
                                                 serialNumber: '01' } }],
  ['CertificateSigned', { certificateChain: 'not a chain' }],
  ['RemoteStopTransaction', { transactionId: 12345 }],
  ['RemoteStopTransaction', { transactionId: tx }],
];

async function main() {
  const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
  let nextId = 500;
  server.on('client', (client) => {
    let commanded = false;
    const note = (method, answer) => client.handle(method, ({ params }) => {
      log(method, params);
      return typeof answer === 'function' ? answer(params) : answer;
    });
    note('BootNotification', { status: 'Accepted', currentTime: now(), interval: 300 });
    note('Heartbeat', () => ({ currentTime: now() }));
    note('StatusNotification', {});
    note('Authorize', { idTagInfo: { status: 'Accepted' } });
    note('StartTransaction', () => ({ transactionId: nextId++, idTagInfo: { status: 'Accepted' } }));
    note('DataTransfer', { status: 'Accepted' });
    note('MeterValues', (params) => {
      if (params.transactionId !== undefined && !commanded) {
        commanded = true;
        setTimeout(async () => {
          try {
            for (const [method, payload] of COMMANDS(params.transactionId)) {
              log(`sent:${method}`, { request: payload, response: await client.call(method, payload) });
            }
          } catch (err) {
            log('error', { message: String(err && err.stack || err) });
          }
        }, 10);
      }
      return {};
    });
    note('StopTransaction', (params) => {
      setTimeout(() => { log('done', {}); }, 50);
      return {};
    });
  });
  const http = await server.listen(0, '127.0.0.1');
  log('listening', { port: http.address().port });
}

main().catch((err) => { log('error', { message: String(err && err.stack || err) }); process.exit(1); });
