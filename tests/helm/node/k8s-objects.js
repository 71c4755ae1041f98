#!/usr/bin/env node
/* k8s-objects.js -- read the YAML documents `helm template` writes (stdin), validate each object
 * against its Kubernetes schema (kubernetes-models: the OpenAPI schemas of the API server, and of
 * the Prometheus Operator for monitoring.coreos.com), and print them as one JSON array (stdout)
 * for the Python tests to inspect.
 *
 * Exits 1, naming each invalid object and what is wrong with it, when an object fails its schema
 * or has a kind no schema is known for; 2 on unreadable input. */
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

/* The module holding the models of an apiVersion ("v1", "apps/v1", ...). */
function modelsOf(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/"))
    return require("@kubernetes-models/prometheus-operator/" + apiVersion);
  return require("kubernetes-models/" + apiVersion);
}

let docs;
try {
  docs = yaml.loadAll(fs.readFileSync(0, "utf8")).filter((d) => d !== null && d !== undefined);
} catch (e) {
  process.stderr.write("k8s-objects: not YAML: " + e.message + "\n");
  process.exit(2);
}

const problems = [];
for (const obj of docs) {
  const what = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  let Model;
  try {
    Model = modelsOf(obj.apiVersion)[obj.kind];
  } catch (e) {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    problems.push(`${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(JSON.parse(JSON.stringify(obj))).validate();
  } catch (e) {
    problems.push(`${what}: ${e.message}`);
  }
}
if (problems.length) {
  process.stderr.write(problems.join("\n") + "\n");
  process.exit(1);
}
process.stdout.write(JSON.stringify(docs));
