// A Node.js gRPC client that knows nothing of docq but the server's address:
// it discovers docq.v1.DocQueue through server reflection (grpc-js-reflection-client,
// the path grpcurl takes), calls SubmitDoc (with a request_id and a queue_timeout,
// twice: the retry gets the same task) and reads the task back with GetStatus,
// finds it first in ListTasks and, once it has ended, deletes it with DeleteTask
// (GetStatus and a second DeleteTask then answer NOT_FOUND), then submits hold_DOC_ID
// (a document the test's AI holds until cancelled) and cancels it with CancelTask.
//
// Usage: node client.js ADDRESS v1|v1alpha DOC_ID
// Prints one JSON object with what it saw; exits 0, or 1 with the error on stderr.
'use strict';
const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 10000 }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// The name of the status a failed call ended with ('OK' when it did not fail).
function codeOf(promise) {
  return promise.then(() => 'OK', (err) => Object.keys(grpc.status).find((k) => grpc.status[k] === err.code));
}

async function main() {
  const [address, version, docId] = process.argv.slice(2);
  const insecure = grpc.credentials.createInsecure();
  const reflection = new GrpcReflection(address, insecure, {}, version);
  const services = await reflection.listServices();
  const methods = (await reflection.listMethods('docq.v1.DocQueue')).map((m) => m.name);
  const descriptor = await reflection.getDescriptorBySymbol('docq.v1.DocQueue');
  const pkg = descriptor.getPackageObject({ keepCase: true, enums: String, longs: String, defaults: true });
  const client = new pkg.docq.v1.DocQueue(address, insecure);
  const request = { doc_id: docId, request_id: 'node-' + docId, queue_timeout: { seconds: 3600, nanos: 0 } };
  const submitted = await call(client, 'SubmitDoc', request);
  const again = await call(client, 'SubmitDoc', request);
  const task = await call(client, 'GetStatus', { task_id: submitted.task_id });
  const listed = await call(client, 'ListTasks', { page_size: 5 });
  const deadline = Date.now() + 60000;
  let ended = task;
  while (!['SUCCESS', 'FAILURE', 'CANCELLED'].includes(ended.state)) {
    if (Date.now() > deadline) throw new Error('task did not end: ' + ended.state);
    await new Promise((resolve) => setTimeout(resolve, 100));
    ended = await call(client, 'GetStatus', { task_id: submitted.task_id });
  }
  const deleted = await call(client, 'DeleteTask', { task_id: submitted.task_id });
  const afterDelete = await codeOf(call(client, 'GetStatus', { task_id: submitted.task_id }));
  const deleteAgain = await codeOf(call(client, 'DeleteTask', { task_id: submitted.task_id }));
  const other = await call(client, 'SubmitDoc', { doc_id: 'hold_' + docId });
  const cancelled = await call(client, 'CancelTask', { task_id: other.task_id });
  client.close();
  console.log(JSON.stringify({
    version,
    services,
    methods,
    submitted: { task_id: submitted.task_id, state: submitted.state },
    again: { task_id: again.task_id },
    status: { task_id: task.task_id, doc_id: task.doc_id, state: task.state, version: task.version },
    cancelled: { task_id: cancelled.task_id, asked: other.task_id, state: cancelled.state, error: cancelled.error },
    listed: listed.tasks.map((t) => t.task_id),
    ended: ended.state,
    deleted: JSON.stringify(deleted) === '{}',
    status_after_delete: afterDelete,
    delete_again: deleteAgain,
  }));
}

main().then(() => process.exit(0), (err) => {
  console.error('node client: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
