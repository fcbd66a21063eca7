#!/usr/bin/env python3
"""A gRPC server reflection client (grpcio-reflection, v1alpha), for Brisk's tests.

    python3 reflection_client.py --target HOST:PORT

Lists the server's services through reflection, loads every service's descriptors (the file
with its imports) into a protobuf DescriptorPool, prints each service with its methods, then
calls example.EchoService.Echo (if listed) with message classes built from those descriptors
alone: what grpcurl does. Exits non-zero on any failure.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    args = parser.parse_args()
    interop_common.require_grpc()
    try:
        import grpc
        from google.protobuf import descriptor_pool, message_factory
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )
    except ImportError as e:
        interop_common.die(f"grpcio-reflection is not importable ({e}); run: {interop_common.PIP_HINT}")

    channel = grpc.insecure_channel(args.target)
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    services = list(database.get_services())
    print("services:", ",".join(services), flush=True)
    for name in services:
        service = pool.FindServiceByName(name)
        methods = ",".join(m.name for m in service.methods)
        print(f"service {name} file={service.file.name} methods={methods}", flush=True)
    # Unknown symbols are errors the client sees as such.
    try:
        pool.FindMessageTypeByName("no.such.Message")
        print("FAILED: an unknown symbol was found", flush=True)
        return 1
    except KeyError:
        print("unknown symbol: not found", flush=True)
    if "example.EchoService" in services:
        method = pool.FindMethodByName("example.EchoService.Echo")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            "/example.EchoService/Echo",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(request_class(message="through reflection"), timeout=10)
        print(f"echo: {response.message}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
