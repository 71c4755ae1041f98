#!/usr/bin/env python3
"""A gRPC client that knows nothing of docq but the server's address.

It takes the path grpcurl takes: over one ServerReflectionInfo stream it
lists the services, fetches the file that declares docq.v1.DocQueue with the
files it imports (asking for any it was not sent), and asks for a symbol and
a file that do not exist. It then builds the request and response classes at
run time (google.protobuf descriptor_pool and message_factory) and calls
SubmitDoc, then GetStatus, with them. The only generated code it imports is
that of the reflection protocol itself.

Usage: reflection_client.py ADDRESS v1|v1alpha DOC_ID
Prints one JSON object with what it saw; exits 0, or 1 with the error.
"""
import json
import os
import sys

sys.path.insert(0, os.environ["DOCQ_PYGEN"])

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402


def reflection_module(version):
    if version == "v1":
        from reflection.v1 import reflection_pb2 as m
    else:
        from reflection.v1alpha import reflection_pb2 as m  # noqa: F811
    return m


class Reflection:
    """One ServerReflectionInfo stream: each ask() sends a request and reads
    its answer, in order, as grpcurl does."""

    def __init__(self, channel, version):
        self.pb = reflection_module(version)
        self.requests = []
        self.answers = 0
        call = channel.stream_stream(
            "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
            request_serializer=self.pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=self.pb.ServerReflectionResponse.FromString)
        self.queue = _Queue()
        self.responses = call(iter(self.queue), timeout=30)

    def ask(self, **question):
        self.queue.put(self.pb.ServerReflectionRequest(**question))
        self.answers += 1
        return next(self.responses)

    def close(self):
        """Half-close; the server must then end the stream with OK."""
        self.queue.put(None)
        for _ in self.responses:
            raise AssertionError("an answer after the half-close")
        return self.responses.code()


class _Queue:
    """A blocking iterator the stream reads requests from (None ends it)."""

    def __init__(self):
        import queue
        self.q = queue.Queue()

    def put(self, item):
        self.q.put(item)

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            yield item


def file_protos(answer):
    if answer.WhichOneof("message_response") != "file_descriptor_response":
        raise AssertionError("expected files, got %s" % answer)
    out = []
    for raw in answer.file_descriptor_response.file_descriptor_proto:
        f = descriptor_pb2.FileDescriptorProto()
        f.ParseFromString(raw)
        out.append(f)
    return out


def build_pool(refl, symbol):
    """A pool holding the file of symbol and, transitively, its imports."""
    files = {f.name: f for f in file_protos(refl.ask(file_containing_symbol=symbol))}
    missing = [d for f in list(files.values()) for d in f.dependency if d not in files]
    while missing:
        name = missing.pop()
        for f in file_protos(refl.ask(file_by_filename=name)):
            files.setdefault(f.name, f)
            missing += [d for d in f.dependency if d not in files]
    pool, added = descriptor_pool.DescriptorPool(), set()

    def add(name):
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)
    for name in files:
        add(name)
    return pool, sorted(files)


def unary(channel, pool, factory, service, method_name, **fields):
    method = service.methods_by_name[method_name]
    req_cls = factory.GetPrototype(method.input_type)
    resp_cls = factory.GetPrototype(method.output_type)
    call = channel.unary_unary("/%s/%s" % (service.full_name, method.name),
                               request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)
    return call(req_cls(**fields), timeout=10)


def main():
    address, version, doc_id = sys.argv[1:4]
    out = {"version": version}
    with grpc.insecure_channel(address) as channel:
        refl = Reflection(channel, version)
        listed = refl.ask(list_services="*")
        out["services"] = sorted(s.name for s in listed.list_services_response.service)
        out["valid_host_echo"] = listed.original_request.list_services
        pool, out["files"] = build_pool(refl, "docq.v1.DocQueue")
        out["not_found"] = [refl.ask(file_containing_symbol="docq.v1.Nope").error_response.error_code,
                            refl.ask(file_by_filename="nope.proto").error_response.error_code]
        out["answers_on_one_stream"] = refl.answers
        out["end_of_stream"] = refl.close().name
        service = pool.FindServiceByName("docq.v1.DocQueue")
        out["methods"] = [m.name for m in service.methods]
        factory = message_factory.MessageFactory(pool)
        submitted = unary(channel, pool, factory, service, "SubmitDoc", doc_id=doc_id)
        out["task_id"] = submitted.task_id
        task = unary(channel, pool, factory, service, "GetStatus", task_id=submitted.task_id)
        state = task.DESCRIPTOR.fields_by_name["state"].enum_type.values_by_number[task.state].name
        out["status"] = {"task_id": task.task_id, "doc_id": task.doc_id, "state": state}
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        print("reflection_client: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        sys.exit(1)
